"""Applying many members' work together: the batched write path of the ingest workers and
of reconcile.

A member's work is its membership operations, in gateway order, then (when an update, a
join or reconcile asked for it) a sync to what Discord shows when the batch gets there. A
batch goes in rounds; each round is one read statement for all its members (state, version,
the key of their next operation, the guild's settings) and one write statement with at most
one compare-and-set per member (MemberSession.write_batch: the ledger and outbox rows exactly
as a single write makes them). A member whose compare-and-set finds it changed (another
writer, another process) leaves the batch and is finished one operation at a time by the
single path: TransitionService with its jittered retries and dead letters, MemberSync with
its strict steps. So a batch never dead-letters a lost race, and never decides twice what
the single path decides once.

Policy of the gateway events, shared by both paths: an operation that no longer applies is a
`not_applicable` dead letter unless it is a known echo (the leave after a kick or a ban, a
join of a member already present); a repeated event (its key already in the ledger) writes
nothing.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from domain.commands import TransitionCommand
from domain.errors import DatabaseUnavailable, DomainError, TransitionDeadLettered
from domain.lifecycle import TransitionNotAllowed, is_echo, target_state
from domain.member_sync import MemberFlags, next_sync_step, sync_key
from domain.metrics import Metrics
from domain.persistence.database import is_unavailable
from domain.persistence.members import MemberStore
from domain.records import Observed, PlannedWrite, WriteOutcome, Written
from domain.sync import MAX_STEPS, MemberSync
from domain.transitions import TransitionService, plan
from domain.vocabulary import Operation, Source, State

log = logging.getLogger(__name__)

MAX_ROUNDS = MAX_STEPS + 4


class MemberView(Protocol):
    """What Discord shows now (the bot's gateway cache)."""

    def member_flags(self, guild_id: int, user_id: int,
                     eligibility_role_id: int | None) -> MemberFlags | None:
        """The member's flags; None when Discord does not show them in the guild (gone, or
        the guild is not available yet: its reconcile syncs every member then)."""
        ...


class _Unread:
    """The guild's settings were not read yet (not the same as "no eligibility role")."""

    def __repr__(self) -> str:
        return "UNREAD"


UNREAD = _Unread()


@dataclass(eq=False)
class MemberWork:
    """One member's part of a batch. It keeps its progress: applying it again (after the
    database did not answer) goes on where it stopped, so nothing is written or
    dead-lettered twice."""

    guild_id: int
    user_id: int
    ops: deque[TransitionCommand] = field(default_factory=deque)
    sync: bool = False  # after the operations, bring the member to what Discord shows
    reason: str = "member update"
    steps: int = 0  # sync steps written
    # The guild's eligibility role as the last read of this member saw it.
    eligibility_role_id: int | _Unread | None = UNREAD
    done: bool = False


@dataclass
class BatchResult:
    members: int = 0
    applied: int = 0  # operations written by the batch statements
    rounds: int = 0
    statements: int = 0
    single: int = 0  # members finished on the single path
    # Members whose work failed in a way no dead letter could hold (the dead letter's own
    # write failed): their guild must be reconciled.
    failed: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class _Round:
    planned: list[tuple[MemberWork, PlannedWrite]] = field(default_factory=list)
    outcomes: list[WriteOutcome] = field(default_factory=list)
    still: list[MemberWork] = field(default_factory=list)
    not_applicable: list[tuple[MemberWork, TransitionCommand, TransitionNotAllowed]] = field(
        default_factory=list)


class BatchApplier:
    def __init__(self, members: MemberStore, transitions: TransitionService,
                 member_sync: MemberSync, metrics: Metrics) -> None:
        self.members = members
        self.transitions = transitions
        self.member_sync = member_sync
        self.metrics = metrics

    async def apply(self, work: list[MemberWork], view: MemberView, *,
                    batched: bool = True) -> BatchResult:
        """Apply every member's work (the members not done yet); `batched=False` goes
        member by member on the single path. Raises DatabaseUnavailable, or the unexpected
        error of a batch statement: the caller applies the same work again later (it went
        on where it stopped). On the single path, every failure ends as a dead letter; a
        member whose dead letter could not be written either is in `failed`."""
        result = BatchResult(members=len(work))
        active = [w for w in work if not w.done]
        single: list[MemberWork] = []
        if not batched:
            single, active = active, []
        while active and result.rounds < MAX_ROUNDS:
            result.rounds += 1
            try:
                still, lost = await self._round(active, view, result)
            except DatabaseUnavailable:
                raise
            except Exception as exc:
                if is_unavailable(exc):
                    raise DatabaseUnavailable(type(exc).__name__) from exc
                raise
            for member in active:
                member.done = True
            for member in still + lost:
                member.done = False
            active = still
            single.extend(lost)
        single.extend(active)
        for member in single:
            try:
                await self.apply_one(member, view)
            except DatabaseUnavailable:
                raise
            except Exception as exc:
                if is_unavailable(exc):
                    raise DatabaseUnavailable(type(exc).__name__) from exc
                log.exception("member %s/%s: the work could not be applied, nor kept as a "
                              "dead letter; the guild will be reconciled", member.guild_id,
                              member.user_id)
                result.failed.append((member.guild_id, member.user_id))
            member.done = True
            result.single += 1
        return result

    async def _round(self, active: list[MemberWork], view: MemberView, result: BatchResult
                     ) -> tuple[list[MemberWork], list[MemberWork]]:
        """One read and one write for every member; answers (still to do, left to the
        single path). A member with a write in flight in this process (the web app's, a
        staff command's) is left to the single path at once, which takes turns with it."""
        turns = self.transitions.turns
        taken = await turns.take_free([(w.guild_id, w.user_id) for w in active])
        single = [w for w, mine in zip(active, taken, strict=True) if not mine]
        mine = [w for w, ok in zip(active, taken, strict=True) if ok]
        round_ = _Round()
        try:
            if mine:
                await self._read_and_write(mine, view, result, round_)
        finally:
            turns.give_back([(w.guild_id, w.user_id) for w in mine])
        for (work, write), outcome in zip(round_.planned, round_.outcomes, strict=True):
            op = write.cmd.operation
            if not isinstance(outcome, Written):
                self.metrics.conflict(op.value)
                single.append(work)
                continue
            self.metrics.transition(op.value, Source.BOT.value, "applied")
            result.applied += 1
            if work.ops and work.ops[0] is write.cmd:
                work.ops.popleft()
            else:
                work.steps += 1
            if work.ops or self._next_sync(work, write.to_state, view) is not None:
                round_.still.append(work)
        for work, cmd, error in round_.not_applicable:
            await self._not_applicable(cmd, error)
            work.ops.popleft()  # only once its dead letter is written
        return round_.still, single

    async def _read_and_write(self, active: list[MemberWork], view: MemberView,
                              result: BatchResult, round_: _Round) -> None:
        async with self.members.session() as session:
            observed = await session.read_batch(
                [(w.guild_id, w.user_id, w.ops[0].idempotency_key if w.ops else None)
                 for w in active])
            result.statements += 1
            for work, seen in zip(active, observed, strict=True):
                work.eligibility_role_id = seen.eligibility_role_id
                had_operation = bool(work.ops)
                write = self._plan(work, seen, view, round_.not_applicable)
                if write is not None:
                    round_.planned.append((work, write))
                elif had_operation:
                    # Its operation was settled without a write (a repeat, an echo, not
                    # applicable): the next round does the rest, the sync included.
                    round_.still.append(work)
            if round_.planned:
                round_.outcomes = await session.write_batch([p for _, p in round_.planned])
                result.statements += 1

    def _plan(self, work: MemberWork, seen: Observed, view: MemberView,
              not_applicable: list[tuple[MemberWork, TransitionCommand,
                                         TransitionNotAllowed]]) -> PlannedWrite | None:
        if work.ops:
            cmd = work.ops[0]
            if seen.prior is not None:  # a replayed event: applied before
                work.ops.popleft()
                if seen.prior.operation == cmd.operation:
                    self.metrics.transition(cmd.operation.value, cmd.source.value,
                                            "idempotent_repeat")
                else:
                    log.warning("%s for %s/%s refused: its key %r was used by %s",
                                cmd.operation.value, cmd.guild_id, cmd.user_id,
                                cmd.idempotency_key, seen.prior.operation.value)
                    self.metrics.transition(cmd.operation.value, cmd.source.value,
                                            "idempotency_key_reused")
                return None
            try:
                to_state = target_state(cmd.operation, seen.state)
            except TransitionNotAllowed as exc:
                if is_echo(cmd.operation, exc.current):
                    work.ops.popleft()
                else:
                    not_applicable.append((work, cmd, exc))  # popped once recorded
                return None
            return plan(cmd, seen, to_state)
        op = self._next_sync(work, seen.state, view)
        if op is None:
            return None
        cmd = TransitionCommand(
            guild_id=work.guild_id, user_id=work.user_id, operation=op, source=Source.BOT,
            idempotency_key=sync_key(op, work.guild_id, work.user_id, seen.version),
            reason=work.reason, expected_state=seen.state, expected_version=seen.version)
        return plan(cmd, seen, target_state(op, seen.state))

    @staticmethod
    def _next_sync(work: MemberWork, state: State | None, view: MemberView
                   ) -> Operation | None:
        if not work.sync or work.ops or isinstance(work.eligibility_role_id, _Unread):
            return None
        if work.steps >= MAX_STEPS:
            log.warning("member %s/%s: sync gave up after %d steps at %s", work.guild_id,
                        work.user_id, work.steps, state)
            return None
        flags = view.member_flags(work.guild_id, work.user_id, work.eligibility_role_id)
        if flags is None:
            return None
        return next_sync_step(state, flags,
                              eligibility_role_configured=work.eligibility_role_id is not None)

    # ---- the single path: one operation at a time ---------------------------------------

    async def apply_one(self, work: MemberWork, view: MemberView) -> None:
        """Finish a member's work through TransitionService and MemberSync. After an
        operation that failed (a dead letter holds it), the member is not synced: the sync
        would only try the same write again and keep a second dead letter of it."""
        while work.ops:
            if await self.apply_event(work.ops[0]):
                work.sync = False
            work.ops.popleft()
        if not work.sync:
            return
        if isinstance(work.eligibility_role_id, _Unread):  # no batch read it
            async with self.members.session() as session:
                (seen,) = await session.read_batch([(work.guild_id, work.user_id, None)])
            work.eligibility_role_id = seen.eligibility_role_id
        role = work.eligibility_role_id
        flags = view.member_flags(work.guild_id, work.user_id, role)
        if flags is None:
            return
        try:
            outcome = await self.member_sync.sync(
                work.guild_id, work.user_id, flags,
                eligibility_role_configured=role is not None, reason=work.reason)
        except TransitionDeadLettered as exc:
            log.warning("sync of %s/%s: %s", work.guild_id, work.user_id, exc)
        except DatabaseUnavailable:
            raise
        except DomainError as exc:
            log.warning("sync of %s/%s refused: %s", work.guild_id, work.user_id, exc)
        else:
            work.steps += len(outcome.applied)

    async def apply_event(self, cmd: TransitionCommand) -> bool:
        """Apply one membership event's operation on the single path; True when its write
        failed (kept as a dead letter, or refused). An operation that no longer applies is
        a `not_applicable` dead letter unless it is an echo. Only DatabaseUnavailable
        escapes."""
        try:
            await self.transitions.apply(cmd)
        except TransitionNotAllowed as exc:
            if is_echo(cmd.operation, exc.current):
                log.debug("ignored %s for %s/%s: %s", cmd.operation.value, cmd.guild_id,
                          cmd.user_id, exc)
            else:
                await self._not_applicable(cmd, exc)
        except TransitionDeadLettered as exc:
            log.warning("%s for %s/%s: %s", cmd.operation.value, cmd.guild_id, cmd.user_id,
                        exc)
            return True
        except DatabaseUnavailable:
            raise
        except DomainError as exc:
            log.warning("%s for %s/%s refused: %s", cmd.operation.value, cmd.guild_id,
                        cmd.user_id, exc)
            return True
        return False

    async def _not_applicable(self, cmd: TransitionCommand, error: TransitionNotAllowed
                              ) -> None:
        entry = await self.transitions.record_not_applicable(cmd, error)
        log.warning("%s for %s/%s does not apply (%s); dead letter #%d", cmd.operation.value,
                    cmd.guild_id, cmd.user_id, error, entry)
