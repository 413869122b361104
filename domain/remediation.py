"""RemediationService: the one implementation behind /dlq, the HTTP API and the CLI.

Every action changes the entry with a compare-and-set on its status and writes, in the
same transaction, a `remediation_actions` audit row and a log-channel mirror row.
Refusals (unknown id, wrong status, bad note) write nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from domain.commands import (
    TransitionCommand,
    check_snowflake,
    new_correlation_id,
)
from domain.dead_letter_reads import (
    UNRESOLVED,
    UNRESOLVED_STATUSES,
    DeadLetterReads,
    check_entry_id,
    entry_filter,
    not_found,
)
from domain.entries import (
    BulkRetryResult,
    DeadLetterEntry,
    GroupRetryResult,
    OutcomeWrite,
    RetryOutcome,
)
from domain.errors import (
    AlreadyRetrying,
    DomainError,
    EntryDismissed,
    InvalidInput,
    InvalidStatus,
    PayloadInvalid,
    StaleEntry,
)
from domain.metrics import CountingMetrics, Metrics
from domain.persistence.audit import AuditStore
from domain.persistence.dead_letters import DeadLetterStore
from domain.redaction import is_blank, redact, scrub
from domain.remediation_outcomes import (
    changed_meanwhile,
    outcome_write,
    past_tense,
)
from domain.transitions import TransitionFailed, TransitionService
from domain.vocabulary import DeadLetterStatus, Source, State, state_value

log = logging.getLogger(__name__)

MAX_NOTE = 1000
# A `retrying` claim older than this belongs to a process that died mid-retry (the default
# of DEAD_LETTER_CLAIM_SECONDS).
STALE_CLAIM_SECONDS = 300
# The audit note of a replay forced although its member had changed since it was recorded.
FORCED_NOTE = "forced replay: the member had changed since this entry was recorded"
# How many of the transitions since a stale entry was recorded its refusal shows.
STALE_HISTORY = 20
# retry_group claims this many entries per statement (each worker replays its batch in turn).
CLAIM_BATCH = 16
# retry_all replays at most this many entries per call, oldest first; its answer's
# `remaining` counts the matches left for another call.
RETRY_ALL_LIMIT = 1000
# The audit row's status_after of a deleted entry.
DELETED = "deleted"


@dataclass(frozen=True)
class _Replayed:
    """A claimed entry that was replayed, with the outcome to write."""

    claimed: DeadLetterEntry
    outcome: OutcomeWrite
    resolved: bool
    detail: str
    already_applied: bool = False
    error: BaseException | None = None

Progress = Callable[[int, int, int], Awaitable[None] | None]


def validate_note(note: str | None) -> str:
    cleaned = (note or "").strip()
    if is_blank(cleaned) or len(cleaned) > MAX_NOTE:
        raise InvalidInput(f"a note of 1 to {MAX_NOTE} characters is required "
                           f"(got {len(cleaned)})")
    return scrub(cleaned)


class RemediationService(DeadLetterReads):
    """DeadLetterReads (list, show, stats, signatures) plus the actions."""

    def __init__(self, store: DeadLetterStore, transitions: TransitionService, *,
                 retention_days: int = 30, metrics: Metrics | None = None,
                 group_concurrency: int = 8,
                 claim_seconds: float = STALE_CLAIM_SECONDS,
                 audit: AuditStore | None = None,
                 retry_all_limit: int = RETRY_ALL_LIMIT) -> None:
        super().__init__(store, retention_days, audit=audit)
        self.transitions = transitions
        self.claim_seconds = claim_seconds  # DEAD_LETTER_CLAIM_SECONDS
        self.metrics: Metrics = metrics or CountingMetrics()
        self.group_concurrency = group_concurrency
        self.retry_all_limit = retry_all_limit  # entries one retry_all call replays

    # ---- acting ----------------------------------------------------------------------

    async def retry(self, guild_id: int, entry_id: int, actor_id: int,
                    source: Source = Source.STAFF, *, force: bool = False) -> RetryOutcome:
        """Replay one entry. A stale entry (its member changed since it was recorded) is
        not replayed: StaleEntry says what changed, and the claim is given back; with
        `force` it is replayed anyway, and the audit row says so."""
        check_snowflake("actor_id", actor_id)
        claimed = await self._claim(guild_id, entry_id)
        stale = await self.stale_members([claimed])
        note = None
        if stale:
            if not force:
                await self.store.release([claimed])
                state, version = stale[claimed.id]
                since = claimed.observed_version or 0
                recent = [h for h in await self.transitions.history(
                    guild_id, claimed.user_id, STALE_HISTORY) if h.version > since]
                raise StaleEntry(claimed.id, claimed.operation, claimed.observed_state, since,
                                 state_value(state), version, recent)
            note = FORCED_NOTE
        return await self._replay(claimed, actor_id, source, note)

    async def stale_members(self, entries: Sequence[DeadLetterEntry]
                            ) -> dict[int, tuple[State | None, int]]:
        """The entries whose member changed since they were recorded: entry id -> the
        member's state and version now. An entry recorded without the member's version is
        never stale, nor one whose own write is in the ledger. One statement for all."""
        recorded = [e for e in entries if e.observed_version is not None]
        if not recorded:
            return {}
        async with self.transitions.members.session() as session:
            now = await session.read_batch([(e.guild_id, e.user_id, e.idempotency_key)
                                            for e in recorded])
        # The entry's own write may have committed after all (its answer was lost): then
        # the replay only answers "already applied", which harms nothing.
        return {e.id: (seen.state, seen.version) for e, seen in zip(recorded, now, strict=True)
                if seen.version != e.observed_version and seen.prior is None}

    async def _replay(self, claimed: DeadLetterEntry, actor_id: int, source: Source,
                      note: str | None = None) -> RetryOutcome:
        """Replays an entry this caller has claimed, and records the outcome."""
        replayed = await self._replay_only(claimed, actor_id, source, note)
        (entry,) = await self._write_outcomes([replayed])
        if entry is None:
            raise changed_meanwhile(claimed)
        if isinstance(replayed.error, PayloadInvalid):
            raise replayed.error  # back to open, audited; the caller hears why (409)
        return RetryOutcome(entry, replayed.resolved, replayed.detail, replayed.already_applied)

    async def _replay_only(self, claimed: DeadLetterEntry, actor_id: int, source: Source,
                           note: str | None = None) -> _Replayed:
        """Replays an entry this caller has claimed; the outcome is not written yet."""
        correlation_id = new_correlation_id()
        try:
            cmd = TransitionCommand.from_payload(claimed.payload).for_replay(actor_id,
                                                                             correlation_id)
        except Exception as exc:  # never stuck in `retrying`: back to open, audited
            invalid = PayloadInvalid(f"dead letter #{claimed.id}: its stored command cannot "
                                     f"be read ({type(exc).__name__}: {exc})")
            return _Replayed(claimed, outcome_write(
                claimed, actor_id, source, "retry", "failed", DeadLetterStatus.OPEN, None,
                correlation_id, invalid), False, redact(str(invalid)), error=invalid)
        error: BaseException | None = None
        already_applied = False
        try:
            result = await self.transitions.apply(cmd, record_failures=False)
            already_applied = not result.applied
        except (TransitionFailed, DomainError) as exc:
            error = exc
        except Exception as exc:  # the entry goes back to open with the error, never lost
            log.exception("replay of dead letter #%d failed unexpectedly", claimed.id)
            error = exc
        if error is None:
            detail = ("the original write had already been applied; resolved without a "
                      "second application" if already_applied else "replayed and applied")
            return _Replayed(claimed, outcome_write(
                claimed, actor_id, source, "retry", "resolved", DeadLetterStatus.RESOLVED,
                note, correlation_id, None), True, detail, already_applied)
        message = redact(str(error) or type(error).__name__)
        return _Replayed(claimed, outcome_write(
            claimed, actor_id, source, "retry", "failed", DeadLetterStatus.OPEN, note,
            correlation_id, error), False, message, error=error)

    async def _write_outcomes(self, replayed: list[_Replayed]
                              ) -> list[DeadLetterEntry | None]:
        """Writes the outcomes of replays (status, audit row, mirror row each), all in one
        transaction: one commit for a batch. None for an entry someone else changed
        meanwhile (a claim taken over as stale)."""
        written = await self.store.write_outcomes([r.outcome for r in replayed])
        for r, entry in zip(replayed, written, strict=True):
            if entry is not None:
                self.metrics.remediation("retry", "resolved" if r.resolved else "failed")
        return written

    async def retry_group(self, guild_id: int, signature: str, actor_id: int,
                          source: Source = Source.STAFF,
                          progress: Progress | None = None, *,
                          force: bool = False) -> GroupRetryResult:
        """Replay every open entry of a signature; stale entries (see `retry`) are skipped
        and counted (`stale`, open as they were) unless `force`."""
        check_snowflake("actor_id", actor_id)
        if not signature or len(signature) > 300:
            raise InvalidInput("signature must be 1..300 characters")
        ids = await self.store.open_ids(guild_id, signature)
        counts = await self._retry_ids(guild_id, ids, actor_id, source, progress, force)
        return GroupRetryResult(signature, len(ids), counts["resolved"], counts["failed"],
                                counts["skipped"], counts["stale"])

    async def retry_all(self, guild_id: int, actor_id: int, source: Source = Source.STAFF,
                        progress: Progress | None = None, *, status: str | None = None,
                        operation: str | None = None, signature: str | None = None,
                        entry_source: str | None = None, user_id: int | None = None,
                        force: bool = False, dry_run: bool = False) -> BulkRetryResult:
        """Replay the unresolved entries matching the list's filters (`entry_source` is its
        `source`), oldest first, at most `retry_all_limit` of them per call (`remaining`
        says how many more matched: call again). Open ones are replayed as by
        `retry_group`; retrying ones are skipped and counted. `dry_run` only counts the
        matches."""
        check_snowflake("guild_id", guild_id)
        check_snowflake("actor_id", actor_id)
        if status not in (None, UNRESOLVED, *UNRESOLVED_STATUSES):
            raise InvalidInput("only unresolved entries are retried: status must be open, "
                               "retrying or unresolved (reopen closed entries first)")
        where = entry_filter(status, operation, entry_source, signature, user_id,
                             order="oldest")
        # A dry run only counts: no ids read.
        ids, matched = await self.store.matching_ids(guild_id, where,
                                                     0 if dry_run else self.retry_all_limit)
        if dry_run:
            return BulkRetryResult(matched, 0, 0, 0, 0, remaining=matched, dry_run=True)
        counts = await self._retry_ids(guild_id, ids, actor_id, source, progress, force)
        return BulkRetryResult(matched, counts["resolved"], counts["failed"],
                               counts["skipped"], counts["stale"],
                               remaining=max(matched - len(ids), 0))

    async def _retry_ids(self, guild_id: int, ids: list[int], actor_id: int, source: Source,
                         progress: Progress | None, force: bool) -> dict[str, int]:
        """Replays the entries `ids` (those still open when claimed): how many resolved,
        failed, were skipped (not open, or acted on meanwhile) and were stale."""
        counts = {"resolved": 0, "failed": 0, "skipped": 0, "stale": 0}
        # group_concurrency workers take CLAIM_BATCH entries at a time: one statement (one
        # commit) claims them all, then the worker replays them one by one. Entries another
        # writer claimed, resolved or dismissed meanwhile are skipped.
        batches = iter([ids[i:i + CLAIM_BATCH] for i in range(0, len(ids), CLAIM_BATCH)])

        async def report() -> None:
            if progress is not None:
                maybe = progress(sum(counts.values()), len(ids), counts["resolved"])
                if maybe is not None:
                    await maybe

        async def worker() -> None:
            for batch in batches:
                claimed = await self.store.claim_some(guild_id, batch, self.claim_seconds)
                if len(claimed) < len(batch):
                    counts["skipped"] += len(batch) - len(claimed)
                    await report()
                stale = await self.stale_members(claimed)
                if stale and not force:
                    await self.store.release([e for e in claimed if e.id in stale])
                    claimed = [e for e in claimed if e.id not in stale]
                    counts["stale"] += len(stale)
                    await report()
                # The batch's outcomes are written together (one commit) once it is
                # replayed. A replay is idempotent (its key), so an entry whose outcome a
                # crash lost is resolved as "already applied" when retried again.
                replayed: list[_Replayed] = []
                try:
                    for entry in claimed:
                        replayed.append(await self._replay_only(
                            entry, actor_id, source, FORCED_NOTE if entry.id in stale else None))
                except BaseException:
                    # Cancelled: what was replayed is recorded, the claims not yet started
                    # go back to open now rather than after the stale-claim delay, and the
                    # one cut short stays claimed until then.
                    await asyncio.shield(self._write_outcomes(replayed))
                    await asyncio.shield(self.store.release(claimed[len(replayed) + 1:]))
                    raise
                for r, written in zip(replayed, await self._write_outcomes(replayed),
                                      strict=True):
                    counts["skipped" if written is None else
                           "resolved" if r.resolved else "failed"] += 1
                    await report()

        await asyncio.gather(*(worker() for _ in range(self.group_concurrency)))
        return counts

    async def resolve(self, guild_id: int, entry_id: int, actor_id: int, note: str,
                      source: Source = Source.STAFF) -> DeadLetterEntry:
        return await self._set_status(guild_id, entry_id, actor_id, source, "resolve",
                                      validate_note(note), DeadLetterStatus.RESOLVED,
                                      allowed={DeadLetterStatus.OPEN})

    async def dismiss(self, guild_id: int, entry_id: int, actor_id: int, note: str,
                      source: Source = Source.STAFF) -> DeadLetterEntry:
        return await self._set_status(guild_id, entry_id, actor_id, source, "dismiss",
                                      validate_note(note), DeadLetterStatus.DISMISSED,
                                      allowed={DeadLetterStatus.OPEN})

    async def reopen(self, guild_id: int, entry_id: int, actor_id: int,
                     source: Source = Source.STAFF, note: str | None = None
                     ) -> DeadLetterEntry:
        cleaned = validate_note(note) if note else None
        return await self._set_status(guild_id, entry_id, actor_id, source, "reopen", cleaned,
                                      DeadLetterStatus.OPEN,
                                      allowed={DeadLetterStatus.DISMISSED,
                                               DeadLetterStatus.RESOLVED})

    async def delete(self, guild_id: int, entry_id: int, actor_id: int, note: str,
                     source: Source = Source.STAFF) -> DeadLetterEntry:
        """Deletes an entry (not one being retried), with a note. Its audit rows stay, and
        this one joins them (status_after `deleted`); the counters' trigger updates the
        counts. The entry as it was."""
        check_snowflake("actor_id", actor_id)
        check_entry_id(guild_id, entry_id)
        cleaned = validate_note(note)
        correlation_id = new_correlation_id()
        seen: list[DeadLetterEntry] = []

        def decide(current: DeadLetterEntry) -> OutcomeWrite:
            seen.append(current)
            if current.status == DeadLetterStatus.RETRYING:
                raise AlreadyRetrying(f"dead letter #{entry_id} is being retried; delete it "
                                      "once the retry has finished")
            outcome = outcome_write(current, actor_id, source, "delete", "deleted",
                                    DeadLetterStatus(current.status), cleaned, correlation_id,
                                    None)
            return replace(outcome, status=DELETED, status_before=current.status,
                           closes=False, counts=False)

        entry = await self.store.delete(guild_id, entry_id, decide)
        if entry is None:
            raise changed_meanwhile(seen[0]) if seen else not_found(entry_id)
        self.metrics.remediation("delete", DELETED)
        return entry

    # ---- internals -------------------------------------------------------------------

    async def _claim(self, guild_id: int, entry_id: int) -> DeadLetterEntry:
        check_entry_id(guild_id, entry_id)
        # The compare-and-set on the status is the claim (retry_group runs thousands). Only
        # when it matches nothing is the entry read, to say why; that new statement sees a
        # concurrent claim the UPDATE may have waited for.
        claimed = await self.store.claim(guild_id, entry_id, self.claim_seconds)
        if claimed is not None:
            return claimed
        current = await self.get(guild_id, entry_id)
        if current.status != DeadLetterStatus.OPEN:
            self._refuse(current, "retry")
        raise AlreadyRetrying(f"dead letter #{entry_id} is already being retried")

    @staticmethod
    def _refuse(entry: DeadLetterEntry, action: str) -> None:
        if entry.status == DeadLetterStatus.RETRYING:
            raise AlreadyRetrying(f"dead letter #{entry.id} is already being retried")
        if entry.status == DeadLetterStatus.DISMISSED:
            raise EntryDismissed(f"dead letter #{entry.id} is dismissed; reopen it before "
                                 f"you {action} it")
        raise InvalidStatus(f"dead letter #{entry.id} is {entry.status}; it cannot be "
                            f"{past_tense(action)}")

    async def _set_status(self, guild_id: int, entry_id: int, actor_id: int, source: Source,
                          action: str, note: str | None, to: DeadLetterStatus,
                          allowed: set[DeadLetterStatus]) -> DeadLetterEntry:
        check_snowflake("actor_id", actor_id)
        check_entry_id(guild_id, entry_id)
        correlation_id = new_correlation_id()

        seen: list[DeadLetterEntry] = []

        def decide(current: DeadLetterEntry) -> OutcomeWrite:
            # The entry is locked: a concurrent retry claim or close waits, and this holds.
            seen.append(current)
            if current.status not in allowed:
                if action == "reopen" and current.status == DeadLetterStatus.OPEN:
                    raise InvalidStatus(f"dead letter #{entry_id} is already open")
                self._refuse(current, action)
            return outcome_write(current, actor_id, source, action, past_tense(action), to, note,
                                 correlation_id, None)

        entry = await self.store.change_status(guild_id, entry_id, decide)
        if entry is None:
            raise changed_meanwhile(seen[0]) if seen else not_found(entry_id)
        self.metrics.remediation(action, past_tense(action))
        return entry
