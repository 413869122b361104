"""TransitionService: the only way a member's state changes.

Implements "How a transition is written" of lifecycle.md: read, guard, compare-and-set
plus ledger row in one statement (hence one transaction), re-read and retry on conflict
with tenacity, and a dead-letter record when it cannot be done.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import text
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
    Operation,
    Source,
    State,
    TransitionNotAllowed,
    target_state,
)
from domain.metrics import CountingMetrics, Metrics
from domain.mirror import LEVELS_FOR, transition_line
from domain.persistence.database import (
    Database,
    UniqueViolation,
    is_unavailable,
)
from domain.persistence.tables import ReasonCode
from domain.transition_sql import (
    DRIVER_GET_MEMBER,
    DRIVER_READ,
    DRIVER_WRITES,
    IDEMPOTENCY_CONSTRAINT,
)
from domain.turns import MemberTurns, shared_repeat

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_initial: float = 0.005
    backoff_max: float = 0.2


@dataclass
class _Observed:
    state: State | None
    version: int
    updated_at: datetime | None
    # What the guild's settings asked for at the read: the write statement includes a side
    # effect's CTE only then (its own WHERE still decides at the write). An INSERT CTE that
    # inserts nothing still costs the server its set-up, which grew with concurrency.
    mirror_on: bool = False
    role_sync_on: bool = False


class TransitionFailed(DomainError):
    """A failure not recorded as a dead letter (replays of an existing entry)."""

    code = "transition_failed"

    def __init__(self, reason_code: ReasonCode, error: BaseException) -> None:
        self.reason_code = reason_code.value
        self.error = error
        super().__init__(f"{reason_code.value}: {error or type(error).__name__}")


class WriteConflict(Exception):
    """Zero rows changed: someone else wrote first."""


class _NotApplicableAfterConflict(Exception):
    def __init__(self, error: TransitionNotAllowed) -> None:
        super().__init__(str(error))
        self.error = error


class TransitionService:
    def __init__(self, db: Database, recorder: DeadLetterRecorder,
                 policy: RetryPolicy | None = None, metrics: Metrics | None = None,
                 mirror_transitions: bool = True, single_flight: bool = True) -> None:
        self.db = db
        self.recorder = recorder
        self.policy = policy or RetryPolicy()
        self.metrics: Metrics = metrics or CountingMetrics()
        self.mirror_transitions = mirror_transitions
        # Writers of one member inside this process take turns (FIFO) instead of racing:
        # a race here would only be lost by one of them, at the cost of a wasted read and
        # write, a backoff and often a dead letter. The compare-and-set still decides
        # between processes. Only members with a write in flight have an entry.
        self.turns = MemberTurns(enabled=single_flight)

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
        except _NotApplicableAfterConflict as exc:
            raise await self._fail(cmd, state, ReasonCode.NOT_APPLICABLE_AFTER_CONFLICT,
                                   exc.error, record_failures) from exc.error
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
        outcome = "applied" if result.applied else "idempotent_repeat"
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
            async with self.db.driver() as conn:
                observed, _ = await self._read(conn, cmd)
            raise StrictConflict(_sv(observed.state), observed.version,
                                 _sv(cmd.expected_state), cmd.expected_version) from None

    async def _attempt(self, cmd: TransitionCommand, st: _AttemptState) -> TransitionResult:
        st.attempts += 1
        if st.attempts > 1:
            self.metrics.retry(cmd.operation.value)
        async with self.db.driver() as conn:
            observed, first = await self._read(conn, cmd)
            st.observed = observed
            if first is not None:
                return self._repeat(cmd, first, st)
            if cmd.strict:
                self._check_expectation(cmd, observed)
            try:
                to_state = target_state(cmd.operation, observed.state)
            except TransitionNotAllowed as exc:
                if st.attempts > 1:
                    raise _NotApplicableAfterConflict(exc) from exc
                raise
            st.to_state = to_state
            st.attempted_from = observed.state
            try:
                row = await self._write(conn, cmd, observed, to_state)
            except UniqueViolation as exc:
                if exc.constraint_name != IDEMPOTENCY_CONSTRAINT:
                    raise
                # Another writer applied the same key between our read and write.
                observed, first = await self._read(conn, cmd)
                if first is None:
                    raise
                return self._repeat(cmd, first, st)
        if row is None:
            st.conflicts += 1
            self.metrics.conflict(cmd.operation.value)
            raise WriteConflict(
                f"another writer changed the member first (attempt {st.attempts}: expected "
                f"{_sv(observed.state) or 'no record'} at version {observed.version})")
        transition_id, version, updated_at = row
        return TransitionResult(
            member=MemberSnapshot(cmd.guild_id, cmd.user_id, to_state, version, updated_at),
            transition_id=transition_id, applied=True, operation=cmd.operation,
            from_state=observed.state, attempts=st.attempts, conflicts=st.conflicts)

    @staticmethod
    def _check_expectation(cmd: TransitionCommand, observed: _Observed) -> None:
        state_ok = cmd.expected_state is None or cmd.expected_state == observed.state
        version_ok = cmd.expected_version is None or cmd.expected_version == observed.version
        if not (state_ok and version_ok):
            raise StrictConflict(_sv(observed.state), observed.version,
                                 _sv(cmd.expected_state), cmd.expected_version)

    async def _read(self, conn: asyncpg.Connection, cmd: TransitionCommand
                    ) -> tuple[_Observed, Any | None]:
        row = await conn.fetchrow(DRIVER_READ.sql, *DRIVER_READ.args(
            {"g": cmd.guild_id, "u": cmd.user_id, "key": cmd.idempotency_key,
             "mirror_levels": LEVELS_FOR["transition"]}))
        assert row is not None  # always one row: FROM (SELECT 1) LEFT JOIN ...
        observed = _Observed(State(row["state"]) if row["state"] else None,
                             row["version"] or 0, row["updated_at"],
                             bool(row["mirror_on"]), bool(row["role_sync_on"]))
        return observed, (row if row["t_id"] is not None else None)

    def _repeat(self, cmd: TransitionCommand, first: Any, st: _AttemptState) -> TransitionResult:
        if first["t_operation"] != cmd.operation.value:
            raise IdempotencyKeyReused(cmd.idempotency_key, first["t_operation"],
                                       cmd.operation.value)
        to_state = State(first["t_to"])
        return TransitionResult(
            member=MemberSnapshot(cmd.guild_id, cmd.user_id, to_state, first["t_version"],
                                  first["t_created"]),
            transition_id=first["t_id"], applied=False, operation=cmd.operation,
            from_state=State(first["t_from"]) if first["t_from"] else None,
            attempts=st.attempts, conflicts=st.conflicts)

    async def _write(self, conn: asyncpg.Connection, cmd: TransitionCommand,
                     observed: _Observed, to_state: State) -> Sequence[Any] | None:
        role_action = _role_action(observed.state, to_state)
        new_member = observed.state is None
        mirror = self.mirror_transitions and observed.mirror_on
        role_sync = role_action is not None and observed.role_sync_on
        params: dict[str, Any] = {
            "g": cmd.guild_id, "u": cmd.user_id, "op": cmd.operation.value,
            "from_state": _sv(observed.state), "to_state": to_state.value,
            "source": cmd.source.value, "actor": cmd.actor_id, "reason": cmd.reason,
            "key": cmd.idempotency_key, "corr": cmd.correlation_id,
        }
        if not new_member:
            params["expected_version"] = observed.version
        if mirror:
            params["mirror_payload"] = json.dumps({
                "record": "transition",
                "line": transition_line(cmd.user_id, cmd.operation.value,
                                        _sv(observed.state), to_state.value,
                                        cmd.source.value, cmd.actor_id),
            })
            params["mirror_levels"] = LEVELS_FOR["transition"]
        if role_sync:
            params["role_action"] = role_action
        stmt = DRIVER_WRITES[(new_member, mirror, role_sync)]
        row: Sequence[Any] | None = await conn.fetchrow(stmt.sql, *stmt.args(params))
        return row

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
        entry_id = await self.recorder.record(draft)
        self.metrics.dead_letter(reason.value)
        self.metrics.transition(cmd.operation.value, cmd.source.value, "dead_lettered")
        log.warning("transition %s for member %s/%s dead-lettered as #%d (%s)",
                    cmd.operation.value, cmd.guild_id, cmd.user_id, entry_id, reason.value)
        return TransitionDeadLettered(entry_id, reason.value, str(error) or type(error).__name__)

    async def record_not_applicable(self, cmd: TransitionCommand,
                                    error: TransitionNotAllowed) -> int:
        """A gateway event that no longer applies, with nobody waiting for an answer:
        kept as a dead letter (reason `not_applicable`) so staff see it, never dropped."""
        state = _AttemptState(attempts=1, observed=_Observed(error.current, 0, None))
        async with self.db.driver() as conn:
            observed, _ = await self._read(conn, cmd)
        state.observed = observed
        failure = await self._fail(cmd, state, ReasonCode.NOT_APPLICABLE, error, True)
        assert isinstance(failure, TransitionDeadLettered)
        return failure.dead_letter_id

    async def history(self, guild_id: int, user_id: int, limit: int = 10) -> list[LedgerEntry]:
        async with self.db.autocommit() as conn:
            rows = await conn.execute(text(
                """SELECT id, version, operation, from_state, to_state, source, actor_id, reason,
                          idempotency_key, correlation_id, created_at
                   FROM member_transitions WHERE guild_id = :g AND user_id = :u
                   ORDER BY version DESC LIMIT :limit"""),
                {"g": guild_id, "u": user_id, "limit": limit})
            return [LedgerEntry(r.id, r.version, Operation(r.operation),
                                State(r.from_state) if r.from_state else None,
                                State(r.to_state), Source(r.source), r.actor_id, r.reason,
                                r.idempotency_key, r.correlation_id, r.created_at)
                    for r in rows]

    async def member_states(self, guild_id: int) -> dict[int, tuple[State, int]]:
        """Every stored member of a guild: user id -> (state, version). For reconciliation."""
        async with self.db.autocommit() as conn:
            rows = await conn.execute(text(
                "SELECT user_id, state, version FROM members WHERE guild_id = :g"),
                {"g": guild_id})
            return {r.user_id: (State(r.state), r.version) for r in rows}

    async def get_member(self, guild_id: int, user_id: int) -> MemberSnapshot | None:
        # A client's read before it writes: on the driver connection like the write path.
        async with self.db.driver() as conn:
            row = await conn.fetchrow(DRIVER_GET_MEMBER.sql, *DRIVER_GET_MEMBER.args(
                {"g": guild_id, "u": user_id}))
        if row is None:
            return None
        return MemberSnapshot(guild_id, user_id, State(row["state"]), row["version"],
                              row["updated_at"])


@dataclass
class _AttemptState:
    attempts: int = 0
    conflicts: int = 0
    observed: _Observed | None = None
    to_state: State | None = None
    attempted_from: State | None = None


def _sv(state: State | None) -> str | None:
    return state.value if state else None


def _role_action(from_state: State | None, to_state: State) -> str | None:
    """Becoming verified grants the verified role; leaving `verified` removes it.

    Not when the member leaves the guild (kick, leave, ban): the role goes with them, and a
    call for a member who is gone would only fail.
    """
    if to_state == State.VERIFIED and from_state != State.VERIFIED:
        return "add"
    if from_state == State.VERIFIED and to_state not in EXIT_STATES | {State.VERIFIED}:
        return "remove"
    return None
