"""TransitionService: the only way a member's state changes.

Implements "How a transition is written" of lifecycle.md: read, guard, compare-and-set
plus ledger row in one statement (hence one transaction), re-read and retry on conflict
with tenacity, and a dead-letter record when it cannot be done.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from domain.commands import LedgerEntry, MemberSnapshot, TransitionCommand, TransitionResult
from domain.deadletters import DeadLetterDraft, DeadLetterRecorder
from domain.errors import (
    DatabaseUnavailable,
    DomainError,
    IdempotencyKeyReused,
    StrictConflict,
    TransitionDeadLettered,
)
from domain.lifecycle import (
    EXIT_STATES,
    TransitionNotAllowed,
    TransitionNotAllowedAfterConflict,
    target_state,
)
from domain.metrics import CountingMetrics, Metrics
from domain.mirror import transition_facts
from domain.persistence.database import is_unavailable
from domain.persistence.members import MemberStore
from domain.records import KeyTaken, Observed, PlannedWrite, PriorTransition, Written
from domain.turns import MemberTurns, shared_repeat
from domain.vocabulary import ReasonCode, State, state_value

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_initial: float = 0.005
    backoff_max: float = 0.2


class TransitionFailed(DomainError):
    """A failure not recorded as a dead letter (replays of an existing entry)."""

    code = "transition_failed"

    def __init__(self, reason_code: ReasonCode, error: BaseException) -> None:
        self.reason_code = reason_code.value
        self.error = error
        super().__init__(f"{reason_code.value}: {error or type(error).__name__}")


class WriteConflict(Exception):
    """Zero rows changed: someone else wrote first."""


class TransitionService:
    def __init__(self, members: MemberStore, recorder: DeadLetterRecorder,
                 policy: RetryPolicy | None = None, metrics: Metrics | None = None,
                 single_flight: bool = True, turns: MemberTurns | None = None) -> None:
        self.members = members
        self.recorder = recorder
        self.policy = policy or RetryPolicy()
        self.metrics: Metrics = metrics or CountingMetrics()
        # Writers of one member inside this process take turns (FIFO) instead of racing:
        # a race here would only be lost by one of them, at the cost of a wasted read and
        # write, a backoff and often a dead letter. The compare-and-set still decides
        # between processes. Only members with a write in flight have an entry. Services of
        # one process over two pools share one `turns`.
        self.turns = turns if turns is not None else MemberTurns(enabled=single_flight)

    async def apply(self, cmd: TransitionCommand, *, record_failures: bool = True
                    ) -> TransitionResult:
        """Apply `cmd`, or raise a DomainError that says why (a dead letter when it had to).

        With `record_failures=False` (a replay of an existing dead letter) a failure raises
        TransitionFailed instead of writing a second dead-letter record.
        """
        state = _AttemptState()
        try:
            async with self.turns.turn(cmd) as slot:
                if slot.shared is not None:
                    result = shared_repeat(cmd, slot.shared)
                else:
                    if cmd.strict:
                        result = await self._apply_strict(cmd, state)
                    else:
                        result = await self._apply_with_retries(cmd, state)
                    slot.publish(result)
        except RetryError as exc:
            cause = exc.last_attempt.exception() or exc
            raise await self._fail(cmd, state, ReasonCode.RETRIES_EXHAUSTED, cause,
                                   record_failures) from None
        except DomainError as exc:
            self.metrics.transition(cmd.operation.value, cmd.source.value, exc.code)
            raise
        except Exception as exc:
            if is_unavailable(exc):
                # No dead letter can be written either: the caller spools or answers 503.
                self.metrics.transition(cmd.operation.value, cmd.source.value, "unavailable")
                raise DatabaseUnavailable(type(exc).__name__) from exc
            log.exception("unexpected error applying %s for member %s/%s (correlation %s)",
                          cmd.operation.value, cmd.guild_id, cmd.user_id, cmd.correlation_id)
            raise await self._fail(cmd, state, ReasonCode.UNEXPECTED_ERROR, exc,
                                   record_failures) from exc
        outcome = ("applied" if result.applied else
                   "already_there" if result.already_there else "idempotent_repeat")
        self.metrics.transition(cmd.operation.value, cmd.source.value, outcome)
        return result

    async def _apply_with_retries(self, cmd: TransitionCommand,
                                  state: _AttemptState) -> TransitionResult:
        # The first attempt runs before tenacity: most writes meet no competitor, and setting
        # up the retry loop cost about a sixth of a transition's client CPU. A conflict on it
        # is handed to tenacity as its attempt 1 (re-raised, no I/O), so the stop, backoff
        # and retry rules, and the RetryError at the end, are exactly tenacity's.
        try:
            return await self._attempt(cmd, state)
        except WriteConflict as exc:
            first_conflict: WriteConflict | None = exc
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.max_attempts),
            wait=wait_random_exponential(multiplier=self.policy.backoff_initial,
                                         max=self.policy.backoff_max),
            retry=retry_if_exception_type(WriteConflict),
        )
        async for attempt in retrying:
            with attempt:
                if first_conflict is not None:
                    conflict, first_conflict = first_conflict, None
                    raise conflict
                return await self._attempt(cmd, state)
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _apply_strict(self, cmd: TransitionCommand,
                            state: _AttemptState) -> TransitionResult:
        try:
            return await self._attempt(cmd, state)
        except WriteConflict:
            async with self.members.session() as session:
                (observed,) = await session.read((cmd,))
            raise StrictConflict(state_value(observed.state), observed.version,
                                 state_value(cmd.expected_state), cmd.expected_version) from None

    async def _attempt(self, cmd: TransitionCommand, st: _AttemptState) -> TransitionResult:
        st.attempts += 1
        if st.attempts > 1:
            self.metrics.retry(cmd.operation.value)
        async with self.members.session() as session:
            (observed,) = await session.read((cmd,))
            st.observed = observed
            if observed.prior is not None:
                return self._repeat(cmd, observed.prior, st)
            if cmd.strict:
                self._check_expectation(cmd, observed)
            if st.attempts > 1 and st.to_state is not None and observed.state == st.to_state:
                return self._already_there(cmd, observed, st)
            try:
                to_state = target_state(cmd.operation, observed.state)
            except TransitionNotAllowed as exc:
                if st.attempts > 1:  # the same refusal as without the race
                    raise TransitionNotAllowedAfterConflict(cmd.operation,
                                                            observed.state) from exc
                raise
            st.to_state = to_state
            st.attempted_from = observed.state
            (outcome,) = await session.write((plan(cmd, observed, to_state),))
            if isinstance(outcome, KeyTaken):
                # Another writer applied the same key between our read and write.
                (observed,) = await session.read((cmd,))
                if observed.prior is None:
                    raise outcome.error
                return self._repeat(cmd, observed.prior, st)
        if outcome is None:
            st.conflicts += 1
            self.metrics.conflict(cmd.operation.value)
            raise WriteConflict(
                f"another writer changed the member first (attempt {st.attempts}: expected "
                f"{state_value(observed.state) or 'no record'} at version {observed.version})")
        written: Written = outcome
        return TransitionResult(
            member=MemberSnapshot(cmd.guild_id, cmd.user_id, to_state, written.version,
                                  written.updated_at),
            transition_id=written.transition_id, applied=True, operation=cmd.operation,
            from_state=observed.state, attempts=st.attempts, conflicts=st.conflicts)

    @staticmethod
    def _already_there(cmd: TransitionCommand, observed: Observed, st: _AttemptState
                       ) -> TransitionResult:
        """Another writer moved the member where this one wanted, first: the intent is
        achieved; nothing written, no dead letter."""
        assert observed.state is not None and observed.updated_at is not None
        return TransitionResult(
            member=MemberSnapshot(cmd.guild_id, cmd.user_id, observed.state, observed.version,
                                  observed.updated_at),
            transition_id=None, applied=False, operation=cmd.operation,
            from_state=observed.state, attempts=st.attempts, conflicts=st.conflicts,
            already_there=True)

    @staticmethod
    def _check_expectation(cmd: TransitionCommand, observed: Observed) -> None:
        state_ok = cmd.expected_state is None or cmd.expected_state == observed.state
        version_ok = cmd.expected_version is None or cmd.expected_version == observed.version
        if not (state_ok and version_ok):
            raise StrictConflict(state_value(observed.state), observed.version,
                                 state_value(cmd.expected_state), cmd.expected_version)

    @staticmethod
    def _repeat(cmd: TransitionCommand, first: PriorTransition, st: _AttemptState
                ) -> TransitionResult:
        if first.operation != cmd.operation:
            raise IdempotencyKeyReused(cmd.idempotency_key, first.operation.value,
                                       cmd.operation.value)
        return TransitionResult(
            member=MemberSnapshot(cmd.guild_id, cmd.user_id, first.to_state, first.version,
                                  first.created_at),
            transition_id=first.transition_id, applied=False, operation=cmd.operation,
            from_state=first.from_state, attempts=st.attempts, conflicts=st.conflicts)

    async def _fail(self, cmd: TransitionCommand, st: _AttemptState, reason: ReasonCode,
                    error: BaseException, record: bool) -> DomainError:
        if not record:
            self.metrics.transition(cmd.operation.value, cmd.source.value, "failed")
            return TransitionFailed(reason, error)
        observed = st.observed
        to_state = st.to_state
        draft = DeadLetterDraft(
            command=cmd, reason_code=reason, error=error, attempts=max(st.attempts, 1),
            # The transition that was attempted (the last read that passed the guard); the
            # observed fields say what the final read saw.
            from_state=st.attempted_from if to_state else (observed.state if observed else None),
            to_state=to_state,
            observed_state=observed.state if observed else None,
            observed_version=observed.version if observed else None,
        )
        try:
            entry_id = await self.recorder.record(draft)
        except Exception as exc:
            if is_unavailable(exc):
                # Neither the write nor its dead letter reached the database: nothing is
                # lost, the caller keeps the command (the ingest log retries it, the API
                # answers 503).
                log.warning("dead letter of %s for %s/%s not written: the database became "
                            "unavailable (%s)", cmd.operation.value, cmd.guild_id,
                            cmd.user_id, type(exc).__name__)
                raise DatabaseUnavailable(type(exc).__name__) from exc
            raise
        self.metrics.dead_letter(reason.value)
        self.metrics.transition(cmd.operation.value, cmd.source.value, "dead_lettered")
        log.warning("transition %s for member %s/%s dead-lettered as #%d (%s)",
                    cmd.operation.value, cmd.guild_id, cmd.user_id, entry_id, reason.value)
        return TransitionDeadLettered(entry_id, reason.value, str(error) or type(error).__name__)

    async def record_not_applicable(self, cmd: TransitionCommand,
                                    error: TransitionNotAllowed) -> int:
        """A gateway event that no longer applies, with nobody waiting for an answer:
        kept as a dead letter (reason `not_applicable`) so staff see it, never dropped."""
        state = _AttemptState(attempts=1)
        async with self.members.session() as session:
            (state.observed,) = await session.read((cmd,))
        failure = await self._fail(cmd, state, ReasonCode.NOT_APPLICABLE, error, True)
        assert isinstance(failure, TransitionDeadLettered)
        return failure.dead_letter_id

    async def history(self, guild_id: int, user_id: int, limit: int = 10) -> list[LedgerEntry]:
        return await self.members.history(guild_id, user_id, limit)

    async def member_states(self, guild_id: int) -> dict[int, tuple[State, int]]:
        """Every stored member of a guild: user id -> (state, version). For reconciliation."""
        return await self.members.states(guild_id)

    async def get_member(self, guild_id: int, user_id: int) -> MemberSnapshot | None:
        return await self.members.get(guild_id, user_id)

    async def written_since(self, guild_id: int, since: datetime,
                            reasons: list[str]) -> tuple[int, int]:
        """(transitions, members) written in the guild since `since` with one of
        `reasons`: what a reconcile's queued work actually wrote."""
        return await self.members.written_since(guild_id, since, reasons)


def plan(cmd: TransitionCommand, observed: Observed, to_state: State) -> PlannedWrite:
    """The write the guard allowed, with the side effects it implies: the verified role's
    sync and the log-channel record, each only when the guild's settings (as read) ask."""
    role_action = role_action_for(observed.state, to_state)
    mirror = None
    if observed.mirror_on:
        mirror = transition_facts(cmd.user_id, cmd.operation.value, state_value(observed.state),
                                  to_state.value, cmd.source.value, cmd.actor_id)
    return PlannedWrite(cmd, observed, to_state,
                        role_action if observed.role_sync_on else None, mirror)


@dataclass(slots=True)
class _AttemptState:
    attempts: int = 0
    conflicts: int = 0
    observed: Observed | None = None
    to_state: State | None = None
    attempted_from: State | None = None



def role_action_for(from_state: State | None, to_state: State) -> str | None:
    """Becoming verified grants the verified role; leaving `verified` removes it.

    Not when the member leaves the guild (kick, leave, ban): the role goes with them, and a
    call for a member who is gone would only fail.
    """
    if to_state == State.VERIFIED and from_state != State.VERIFIED:
        return "add"
    if from_state == State.VERIFIED and to_state not in EXIT_STATES | {State.VERIFIED}:
        return "remove"
    return None


def role_wanted(state: State | None) -> bool | None:
    """Whether a member in `state` should hold the guild's verified role: True when
    verified, False while in the guild otherwise, None when there is nothing to change (no
    record, or gone from the guild). A role delivery retried later, and role-drift repair,
    decide from this rather than from what the member was when the row was queued."""
    if state is None or state in EXIT_STATES:
        return None
    return state == State.VERIFIED
