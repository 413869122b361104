"""RemediationService: the one implementation behind /dlq, the HTTP API and the CLI.

Every action changes the entry with a compare-and-set on its status and writes, in the
same transaction, a `remediation_actions` audit row and a log-channel mirror row.
Refusals (unknown id, wrong status, bad note) write nothing.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import text

from domain.commands import (
    TransitionCommand,
    check_snowflake,
    new_correlation_id,
)
from domain.dead_letter_reads import DeadLetterReads, check_entry_id
from domain.deadletters import error_type_of
from domain.entries import (
    DeadLetterEntry,
    GroupRetryResult,
    RetryOutcome,
)
from domain.errors import (
    AlreadyRetrying,
    DomainError,
    EntryDismissed,
    InvalidInput,
    InvalidStatus,
)
from domain.lifecycle import Source
from domain.metrics import CountingMetrics, Metrics
from domain.mirror import LEVELS_FOR, remediation_line
from domain.persistence.database import Database
from domain.persistence.tables import DeadLetterStatus
from domain.redaction import redact, scrub
from domain.remediation_sql import (
    DRIVER_CLAIM,
    DRIVER_CLAIM_SOME,
    DRIVER_RELEASE,
    DRIVER_WRITE_OUTCOME,
    WRITE_OUTCOME,
)
from domain.transitions import TransitionFailed, TransitionService

log = logging.getLogger(__name__)

MAX_NOTE = 1000
# A `retrying` claim older than this belongs to a process that died mid-retry.
STALE_CLAIM_SECONDS = 300
# retry_group claims this many entries per statement (each worker replays its batch in turn).
CLAIM_BATCH = 16


@dataclass(frozen=True)
class _Replayed:
    """A claimed entry that was replayed, with its outcome's WRITE_OUTCOME parameters."""

    claimed: DeadLetterEntry
    params: dict[str, Any]
    resolved: bool
    detail: str
    already_applied: bool = False

Progress = Callable[[int, int, int], Awaitable[None] | None]


def validate_note(note: str | None) -> str:
    cleaned = (note or "").strip()
    if not 1 <= len(cleaned) <= MAX_NOTE:
        raise InvalidInput(f"a note of 1 to {MAX_NOTE} characters is required "
                           f"(got {len(cleaned)})")
    return scrub(cleaned)


class RemediationService(DeadLetterReads):
    """DeadLetterReads (list, show, stats, signatures) plus the actions."""

    def __init__(self, db: Database, transitions: TransitionService, *,
                 retention_days: int = 30, metrics: Metrics | None = None,
                 group_concurrency: int = 8) -> None:
        super().__init__(db, retention_days)
        self.transitions = transitions
        self.metrics: Metrics = metrics or CountingMetrics()
        self.group_concurrency = group_concurrency

    # ---- acting ----------------------------------------------------------------------

    async def retry(self, guild_id: int, entry_id: int, actor_id: int,
                    source: Source = Source.STAFF) -> RetryOutcome:
        check_snowflake("actor_id", actor_id)
        return await self._replay(await self._claim(guild_id, entry_id), actor_id, source)

    async def _replay(self, claimed: DeadLetterEntry, actor_id: int, source: Source
                      ) -> RetryOutcome:
        """Replays an entry this caller has claimed, and records the outcome."""
        replayed = await self._replay_only(claimed, actor_id, source)
        (entry,) = await self._write_outcomes([replayed])
        if entry is None:
            raise _changed_meanwhile(claimed)
        return RetryOutcome(entry, replayed.resolved, replayed.detail, replayed.already_applied)

    async def _replay_only(self, claimed: DeadLetterEntry, actor_id: int, source: Source
                           ) -> _Replayed:
        """Replays an entry this caller has claimed; the outcome is not written yet."""
        correlation_id = new_correlation_id()
        cmd = TransitionCommand.from_payload(claimed.payload).for_replay(actor_id, correlation_id)
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
            return _Replayed(claimed, self._outcome(
                claimed, actor_id, source, "retry", "resolved", DeadLetterStatus.RESOLVED,
                None, correlation_id, None), True, detail, already_applied)
        message = redact(str(error) or type(error).__name__)
        return _Replayed(claimed, self._outcome(
            claimed, actor_id, source, "retry", "failed", DeadLetterStatus.OPEN, None,
            correlation_id, error), False, message)

    async def _write_outcomes(self, replayed: builtins.list[_Replayed]
                              ) -> builtins.list[DeadLetterEntry | None]:
        """Writes the outcomes of replays (status, audit row, mirror row each), all in one
        transaction: one commit for a batch. None for an entry someone else changed
        meanwhile (a claim taken over as stale)."""
        if not replayed:
            return []
        statement, args = DRIVER_WRITE_OUTCOME.sql, DRIVER_WRITE_OUTCOME.args
        # Each statement's trigger locks its dead_letter_counts rows in status order (open <
        # retrying < resolved). A transaction of several statements must take them in that
        # order too, or two sessions writing to the same counter slot deadlock: so failures
        # (retrying -> open) are written before successes (retrying -> resolved).
        order = sorted(range(len(replayed)), key=lambda i: replayed[i].resolved)
        rows: builtins.list[Any] = [None] * len(replayed)
        async with self.db.driver() as driver:
            if len(replayed) == 1:
                rows[0] = await driver.fetchrow(statement, *args(replayed[0].params))
            else:
                async with driver.transaction():
                    for i in order:
                        rows[i] = await driver.fetchrow(statement, *args(replayed[i].params))
        written: builtins.list[DeadLetterEntry | None] = []
        for r, row in zip(replayed, rows, strict=True):
            if row is None:
                written.append(None)
                continue
            written.append(_written(r.claimed, row))
            self.metrics.remediation("retry", "resolved" if r.resolved else "failed")
        return written

    async def retry_group(self, guild_id: int, signature: str, actor_id: int,
                          source: Source = Source.STAFF,
                          progress: Progress | None = None) -> GroupRetryResult:
        check_snowflake("actor_id", actor_id)
        if not signature or len(signature) > 300:
            raise InvalidInput("signature must be 1..300 characters")
        async with self.db.autocommit() as conn:
            ids = list((await conn.execute(text(
                "SELECT id FROM dead_letters WHERE guild_id = :g AND signature = :s "
                "AND status = 'open' ORDER BY id"),
                {"g": guild_id, "s": signature})).scalars())
        counts = {"resolved": 0, "failed": 0, "skipped": 0}
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
                claimed = await self._claim_batch(guild_id, batch)
                if len(claimed) < len(batch):
                    counts["skipped"] += len(batch) - len(claimed)
                    await report()
                # The batch's outcomes are written together (one commit) once it is
                # replayed. A replay is idempotent (its key), so an entry whose outcome a
                # crash lost is resolved as "already applied" when retried again.
                replayed: builtins.list[_Replayed] = []
                try:
                    for entry in claimed:
                        replayed.append(await self._replay_only(entry, actor_id, source))
                except BaseException:
                    # Cancelled: what was replayed is recorded, the claims not yet started
                    # go back to open now rather than after the stale-claim delay, and the
                    # one cut short stays claimed until then.
                    await asyncio.shield(self._write_outcomes(replayed))
                    await asyncio.shield(self._release(claimed[len(replayed) + 1:]))
                    raise
                for r, written in zip(replayed, await self._write_outcomes(replayed),
                                      strict=True):
                    counts["skipped" if written is None else
                           "resolved" if r.resolved else "failed"] += 1
                    await report()

        await asyncio.gather(*(worker() for _ in range(self.group_concurrency)))
        return GroupRetryResult(signature, len(ids), counts["resolved"], counts["failed"],
                                counts["skipped"])

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

    # ---- internals -------------------------------------------------------------------

    async def _claim(self, guild_id: int, entry_id: int) -> DeadLetterEntry:
        check_entry_id(guild_id, entry_id)
        # The compare-and-set on the status is the claim: one statement, its own transaction,
        # on the driver connection (retry_group runs thousands). Only when it matches nothing
        # is the entry read, to say why; that new statement sees a concurrent claim the UPDATE
        # may have waited for.
        async with self.db.driver() as driver:
            row = await driver.fetchrow(DRIVER_CLAIM.sql, *DRIVER_CLAIM.args(
                {"id": entry_id, "g": guild_id, "stale": STALE_CLAIM_SECONDS}))
        if row is not None:
            return _entry(row)
        async with self.db.autocommit() as conn:
            current = await self._get(conn, guild_id, entry_id)
        if current.status != DeadLetterStatus.OPEN:
            self._refuse(current, "retry")
        raise AlreadyRetrying(f"dead letter #{entry_id} is already being retried")

    async def _claim_batch(self, guild_id: int, entry_ids: builtins.list[int]
                           ) -> builtins.list[DeadLetterEntry]:
        """Claims those of `entry_ids` that are open (or claimed long ago), in id order."""
        async with self.db.driver() as driver:
            rows = await driver.fetch(DRIVER_CLAIM_SOME.sql, *DRIVER_CLAIM_SOME.args(
                {"ids": entry_ids, "g": guild_id, "stale": STALE_CLAIM_SECONDS}))
        return sorted((_entry(r) for r in rows), key=lambda e: e.id)

    async def _release(self, claimed: builtins.list[DeadLetterEntry]) -> None:
        """Gives back claims that were not used: open again, as they were."""
        if not claimed:
            return
        async with self.db.driver() as driver:
            await driver.execute(DRIVER_RELEASE.sql, *DRIVER_RELEASE.args(
                {"ids": [e.id for e in claimed], "versions": [e.version for e in claimed],
                 "g": claimed[0].guild_id}))

    @staticmethod
    def _refuse(entry: DeadLetterEntry, action: str) -> None:
        if entry.status == DeadLetterStatus.RETRYING:
            raise AlreadyRetrying(f"dead letter #{entry.id} is already being retried")
        if entry.status == DeadLetterStatus.DISMISSED:
            raise EntryDismissed(f"dead letter #{entry.id} is dismissed; reopen it before "
                                 f"you {action} it")
        raise InvalidStatus(f"dead letter #{entry.id} is {entry.status}; it cannot be "
                            f"{_past(action)}")

    async def _set_status(self, guild_id: int, entry_id: int, actor_id: int, source: Source,
                          action: str, note: str | None, to: DeadLetterStatus,
                          allowed: set[DeadLetterStatus]) -> DeadLetterEntry:
        check_snowflake("actor_id", actor_id)
        correlation_id = new_correlation_id()
        async with self.db.transaction() as conn:
            # Locked: a concurrent retry claim or close waits, and the status check holds.
            current = await self._get(conn, guild_id, entry_id, for_update=True)
            if current.status not in allowed:
                if action == "reopen" and current.status == DeadLetterStatus.OPEN:
                    raise InvalidStatus(f"dead letter #{entry_id} is already open")
                self._refuse(current, action)
            params = self._outcome(current, actor_id, source, action, _past(action), to, note,
                                   correlation_id, None)
            entry = _written(current, (await conn.execute(WRITE_OUTCOME, params)).first())
        self.metrics.remediation(action, _past(action))
        return entry

    @staticmethod
    def _outcome(current: DeadLetterEntry, actor_id: int, source: Source, action: str,
                 outcome: str, to: DeadLetterStatus, note: str | None, correlation_id: str,
                 error: BaseException | None) -> dict[str, Any]:
        """Parameters of WRITE_OUTCOME: the status compare-and-set, the audit row and the
        mirror row, in one statement (all or nothing, one round trip)."""
        params: dict[str, Any] = {
            "id": current.id, "g": current.guild_id, "version": current.version,
            "status": to.value, "actor": actor_id, "note": note,
            "resolved": to in (DeadLetterStatus.RESOLVED, DeadLetterStatus.DISMISSED),
            "failed": error is not None,
            "error_type": error_type_of(error) if error else None,
            "error_message": redact(str(error) or type(error).__name__) if error else None,
            "count_it": action != "reopen",
        }
        shown = outcome if not error else f"{outcome}: {params['error_message'][:200]}"
        # The line names the entry's id, operation, member and states, which no remediation
        # changes: it is written from the entry as read, in the same statement.
        line = remediation_line(_past(action), actor_id, _fields(current), shown, note)
        params.update({
            "source": source.value, "action": action, "outcome": outcome,
            "before": "open" if current.status == "retrying" else current.status,
            "corr": correlation_id,
            "mirror_payload": json.dumps({"line": line, "record": "remediation",
                                          "dead_letter_id": current.id, "action": action}),
            "mirror_levels": LEVELS_FOR["remediation"]})
        return params


def _entry(record: Any) -> DeadLetterEntry:
    """An entry from a driver (asyncpg) record of DEAD_LETTER_COLUMNS."""
    return DeadLetterEntry(**{f.name: record[f.name] for f in fields(DeadLetterEntry)})


def _changed_meanwhile(entry: DeadLetterEntry) -> AlreadyRetrying:
    return AlreadyRetrying(f"dead letter #{entry.id} was changed by someone else meanwhile; "
                           "look at it again")


def _written(current: DeadLetterEntry, row: Any) -> DeadLetterEntry:
    if row is None:
        raise _changed_meanwhile(current)
    return DeadLetterEntry.from_row(row) if hasattr(row, "_mapping") else _entry(row)


def _fields(entry: DeadLetterEntry) -> dict[str, Any]:
    """The entry's fields, shallow: as_dict() deep-copies the payload, which a mirror line
    does not read."""
    return {f.name: getattr(entry, f.name) for f in fields(entry)}


def _past(action: str) -> str:
    return {"retry": "retried", "resolve": "resolved", "dismiss": "dismissed",
            "reopen": "reopened"}.get(action, action)
