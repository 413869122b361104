"""TransitionService on a real PostgreSQL: guard, CAS, strict mode, idempotency, dead letters."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from bot.settings import Settings
from domain.errors import (
    DatabaseUnavailable,
    IdempotencyKeyReused,
    StrictConflict,
    TransitionDeadLettered,
)
from domain.lifecycle import TRANSITIONS, Operation, Source, State, TransitionNotAllowed
from domain.persistence.faults import Hit, Point, connection_dropped
from tests.helpers import GUILD, OTHER_GUILD, check_invariants, cmd, count, next_user, path_to
from tests.wiring import ProcessServices

REACHABLE = [s for s in State]


async def drive(services: ProcessServices, user: int, target: State, guild: int = GUILD) -> None:
    for op in path_to(target):
        await services.transitions.apply(cmd(op, user, guild))


@pytest.mark.parametrize(("op", "source"), [(op, s) for (op, s) in TRANSITIONS],
                         ids=lambda v: str(v))
async def test_every_allowed_transition_is_written_with_its_ledger_row(
        services: ProcessServices, op: Operation, source: State | None) -> None:
    user = next_user()
    if source is not None:
        await drive(services, user, source)
    before = await services.transitions.get_member(GUILD, user)
    result = await services.transitions.apply(cmd(op, user))
    assert result.applied
    assert result.member.state == TRANSITIONS[(op, source)]
    assert result.member.version == (before.version if before else 0) + 1
    history = await services.transitions.history(GUILD, user, limit=1)
    assert history[0].operation == op and history[0].from_state == source
    await check_invariants(services.db)


FORBIDDEN = [(op, s) for op in Operation for s in [None, *State] if (op, s) not in TRANSITIONS]


@pytest.mark.parametrize(("op", "source"), FORBIDDEN, ids=lambda v: str(v))
async def test_every_forbidden_transition_is_refused_and_writes_nothing(
        services: ProcessServices, op: Operation, source: State | None) -> None:
    user = next_user()
    if source is not None:
        await drive(services, user, source)
    ledger_before = await count(services.db, "member_transitions")
    with pytest.raises(TransitionNotAllowed):
        await services.transitions.apply(cmd(op, user))
    assert await count(services.db, "member_transitions") == ledger_before
    assert await count(services.db, "dead_letters") == 0


async def test_manual_verification_from_wrong_state_is_a_clear_hard_reject(
        services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.RULES_ACCEPTED)
    with pytest.raises(TransitionNotAllowed, match="allowed from: verification_pending"):
        await services.transitions.apply(cmd(Operation.VERIFY, user, source=Source.STAFF,
                                             actor_id=5))
    member = await services.transitions.get_member(GUILD, user)
    assert member is not None and member.state == State.RULES_ACCEPTED


async def test_verification_in_one_guild_says_nothing_about_another(
        services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.VERIFIED, GUILD)
    await drive(services, user, State.JOINED, OTHER_GUILD)
    other = await services.transitions.get_member(OTHER_GUILD, user)
    assert other is not None and other.state == State.JOINED and other.version == 1


# Another process moves the member on between writer A's read and its write: A's
# compare-and-set must find zero rows changed, and its retry must start from a fresh read.
# "state": the competitor changed the state, which the state check alone would catch;
# "version": it went away and back (verify, reverify), so only the version tells A its read
# is stale.
STALE_CASES = {
    "state": (Operation.LEAVE, [Operation.REJECT], State.REJECTED_NOT_ELIGIBLE),
    "version": (Operation.REJECT, [Operation.VERIFY, Operation.REVERIFY],
                State.VERIFICATION_PENDING),
}


@pytest.mark.parametrize("case", STALE_CASES)
async def test_stale_version_write_is_rejected_and_retry_after_fresh_read_succeeds(
        services: ProcessServices, case: str) -> None:
    op, competing_ops, fresh_state = STALE_CASES[case]
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    read = await services.transitions.get_member(GUILD, user)
    assert read is not None
    writes_before = services.faults.hits[Point.MEMBERS_WRITE]
    # Writer A is held at its write, after its read.
    gate = services.faults.hold(Point.MEMBERS_WRITE, when=lambda hit: hit.key == "writer-a")
    writer_a = asyncio.create_task(services.transitions.apply(
        cmd(op, user, source=Source.STAFF, actor_id=5, key="writer-a")))
    await asyncio.wait_for(gate.reached.wait(), 5)
    assert gate.hits[0].detail["version"] == read.version
    other_process = ProcessServices(services.db)
    for competing in competing_ops:
        await other_process.transitions.apply(cmd(competing, user, source=Source.STAFF,
                                                  actor_id=6))
    gate.release()
    result = await asyncio.wait_for(writer_a, 5)

    assert result.applied and result.attempts == 2 and result.conflicts == 1
    assert services.metrics.conflicts[op.value] == 1
    assert services.faults.hits[Point.MEMBERS_WRITE] == writes_before + 2
    assert result.from_state == fresh_state
    assert result.member.version == read.version + len(competing_ops) + 1
    history = await services.transitions.history(GUILD, user, limit=1)
    assert history[0].idempotency_key == "writer-a" and history[0].from_state == fresh_state
    assert await count(services.db, "dead_letters") == 0
    await check_invariants(services.db)


async def test_strict_mode_answers_a_conflict_with_current_state_and_writes_nothing(
        services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    member = await services.transitions.get_member(GUILD, user)
    assert member is not None
    with pytest.raises(StrictConflict) as info:
        await services.transitions.apply(cmd(Operation.VERIFY, user, source=Source.API,
                                             expected_state=State.VERIFICATION_PENDING,
                                             expected_version=member.version - 1))
    assert info.value.current_state == "verification_pending"
    assert info.value.current_version == member.version
    assert await count(services.db, "member_transitions", "user_id = :u", u=user) \
        == member.version
    assert await count(services.db, "dead_letters") == 0
    assert services.metrics.retries["verify"] == 0
    ok = await services.transitions.apply(cmd(Operation.VERIFY, user, source=Source.API,
                                              expected_state=State.VERIFICATION_PENDING,
                                              expected_version=member.version))
    assert ok.member.state == State.VERIFIED


async def test_same_idempotency_key_applies_once_and_answers_the_same(
        services: ProcessServices) -> None:
    user = next_user()
    first = await services.transitions.apply(cmd(Operation.JOIN, user, key="join-1"))
    again = await services.transitions.apply(cmd(Operation.JOIN, user, key="join-1"))
    assert first.applied and not again.applied
    assert again.transition_id == first.transition_id
    assert again.member.state == first.member.state
    assert again.member.version == first.member.version
    assert await count(services.db, "member_transitions", "user_id = :u", u=user) == 1
    with pytest.raises(IdempotencyKeyReused):
        await services.transitions.apply(cmd(Operation.START_ONBOARDING, user, key="join-1"))
    assert await count(services.db, "member_transitions", "user_id = :u", u=user) == 1


async def test_max_attempts_one_and_a_winning_competitor_dead_letter_once(
        clean_db) -> None:
    services = ProcessServices(clean_db, transition_max_attempts=1)
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)

    # Another process writes the member between this writer's read and its write (a real
    # write: its own services, its own connection), so the compare-and-set really loses.
    other_process = ProcessServices(services.db)

    async def competing_write(hit: Hit) -> None:
        await other_process.transitions.apply(cmd(Operation.REJECT, user,
                                                  source=Source.STAFF, actor_id=5))

    competitor = services.faults.call(Point.MEMBERS_WRITE, competing_write, times=1)
    with pytest.raises(TransitionDeadLettered) as info:
        await services.transitions.apply(cmd(Operation.VERIFY, user, source=Source.API,
                                             actor_id=77, reason="email checked",
                                             key="verify-77"))
    assert await count(services.db, "dead_letters") == 1
    async with services.db.autocommit() as conn:
        row = (await conn.execute(text("SELECT * FROM dead_letters"))).one()._mapping
    assert row["id"] == info.value.dead_letter_id
    assert row["reason_code"] == "retries_exhausted"
    assert row["operation"] == "verify" and row["from_state"] == "verification_pending"
    assert row["to_state"] == "verified" and row["observed_state"] == "verification_pending"
    assert row["observed_version"] == 5 and row["attempts"] == 1
    assert row["error_type"] == "WriteConflict" and "another writer" in row["error_message"]
    assert row["source"] == "api" and row["actor_id"] == 77
    assert row["idempotency_key"] == "verify-77" and row["correlation_id"]
    assert row["payload"]["operation"] == "verify" and row["payload"]["reason"] == "email checked"
    assert row["signature"] == "verify/retries_exhausted/WriteConflict"
    assert row["status"] == "open" and row["remediation_count"] == 0 and row["version"] == 1
    assert row["created_at"] and row["updated_at"]
    assert competitor.fired == 1 and services.metrics.conflicts["verify"] == 1
    member = await services.transitions.get_member(GUILD, user)
    assert member is not None and member.state == State.REJECTED_NOT_ELIGIBLE
    assert member.version == 6
    await check_invariants(services.db)


async def test_retries_exhausted_with_default_attempts(services: ProcessServices) -> None:
    default = Settings.model_fields["transition_max_attempts"].default
    assert services.settings.transition_max_attempts == default
    user = next_user()
    await drive(services, user, State.JOINED)
    lose = services.faults.lose_cas(when=lambda hit: hit.user_id == user)
    with pytest.raises(TransitionDeadLettered) as info:
        await services.transitions.apply(cmd(Operation.START_ONBOARDING, user))
    assert info.value.reason_code == "retries_exhausted"
    assert lose.fired == default
    assert services.faults.hits[Point.MEMBERS_WRITE] == default + len(path_to(State.JOINED))
    assert services.metrics.conflicts["start_onboarding"] == default
    assert services.metrics.retries["start_onboarding"] == default - 1
    assert await count(services.db, "dead_letters", "attempts = :n", n=default) == 1
    member = await services.transitions.get_member(GUILD, user)
    assert member is not None and member.state == State.JOINED and member.version == 1


async def _race_with_another_process(services: ProcessServices, user: int,
                                     op: Operation) -> None:
    """The other process's write lands between this process's read and write of `user`
    (within one process, writers of a member take turns, so it could not)."""
    other_process = ProcessServices(services.db)

    async def other_first(hit: Hit) -> None:
        await other_process.transitions.apply(cmd(op, user))

    services.faults.call(Point.MEMBERS_WRITE, other_first, times=1,
                         when=lambda hit: hit.user_id == user)


async def test_a_waiting_caller_refused_after_a_conflict_gets_the_plain_refusal(
        services: ProcessServices) -> None:
    """lifecycle.md, step 6: the web app verifies while the member leaves (another
    process). The fresh read makes `verify` impossible: the web app gets the refusal it
    would get without the race, and no dead letter is kept (somebody is waiting)."""
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    await _race_with_another_process(services, user, Operation.LEAVE)
    with pytest.raises(TransitionNotAllowed) as info:
        await services.transitions.apply(cmd(Operation.VERIFY, user, source=Source.API))
    assert info.value.current == State.LEFT_GUILD
    assert services.metrics.conflicts["verify"] == 1  # the race happened
    assert await count(services.db, "dead_letters") == 0
    await check_invariants(services.db)


async def test_a_gateway_event_refused_after_a_conflict_is_kept_as_a_dead_letter(
        services: ProcessServices) -> None:
    """The same race for an operation nobody waits on (the ingest workers' single path):
    kept as a `not_applicable` dead letter."""
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    await _race_with_another_process(services, user, Operation.LEAVE)
    failed = await services.services.batches.apply_event(cmd(Operation.VERIFY, user))
    assert not failed  # settled: kept for staff, not a failed write
    assert services.metrics.conflicts["verify"] == 1
    async with services.db.autocommit() as conn:
        row = (await conn.execute(text("SELECT * FROM dead_letters"))).one()._mapping
    assert row["reason_code"] == "not_applicable" and row["observed_state"] == "left_guild"


async def test_two_writers_wanting_the_same_state_are_both_answered_already_there(
        services: ProcessServices) -> None:
    """Staff verify while the web app (another process) verifies the same member: the
    loser's intent is achieved. Answer: not applied, already there, no ledger row, no dead
    letter; one `verify` in the ledger."""
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    await _race_with_another_process(services, user, Operation.VERIFY)
    result = await services.transitions.apply(cmd(Operation.VERIFY, user, source=Source.STAFF))
    assert result.already_there and not result.applied and result.transition_id is None
    assert result.member.state == State.VERIFIED
    assert services.metrics.conflicts["verify"] == 1
    history = await services.transitions.history(GUILD, user)
    assert [h.operation for h in history].count(Operation.VERIFY) == 1
    assert await count(services.db, "dead_letters") == 0


async def test_unexpected_error_is_dead_lettered_with_redacted_message(
        services: ProcessServices) -> None:
    user = next_user()

    services.faults.fail(Point.MEMBERS_WRITE, lambda: RuntimeError(
        "connection to postgresql://app:hunter2@db failed"))
    with pytest.raises(TransitionDeadLettered):
        await services.transitions.apply(cmd(Operation.JOIN, user))
    async with services.db.autocommit() as conn:
        row = (await conn.execute(text("SELECT * FROM dead_letters"))).one()._mapping
    assert row["reason_code"] == "unexpected_error" and row["error_type"] == "RuntimeError"
    assert "hunter2" not in row["error_message"]


async def test_successful_transition_creates_no_dead_letter(services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.VERIFIED)
    assert await count(services.db, "dead_letters") == 0


async def test_a_dead_letter_that_cannot_be_written_raises_database_unavailable(
        services: ProcessServices) -> None:
    """The write fails unexpectedly, then the connection drops while its dead letter is
    written: the service says 'database unavailable' (the caller keeps the command: the
    ingest log retries it, the API answers 503), not the driver's raw error."""
    user = next_user()
    services.faults.fail(Point.MEMBERS_WRITE, lambda: RuntimeError("disk full"))
    dropped = services.faults.fail(Point.DEAD_LETTERS_INSERT, connection_dropped, times=1)
    with pytest.raises(DatabaseUnavailable):
        await services.transitions.apply(cmd(Operation.JOIN, user))
    assert dropped.fired == 1
    assert await count(services.db, "dead_letters") == 0
