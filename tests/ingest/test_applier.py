"""The batched write path (domain/ingest/applier.py) on real PostgreSQL: the rows it writes
are the single path's rows; a member that loses its compare-and-set, or has a write in
flight in this process, is finished by the single path; a repeated batch writes nothing."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from sqlalchemy import text

from domain.commands import TransitionCommand
from domain.ingest.applier import MemberWork
from domain.lifecycle import Operation, Source, State
from domain.member_sync import MemberFlags
from domain.persistence.database import Database
from domain.persistence.faults import Point
from tests.helpers import GUILD, check_invariants, cmd, count, drive, next_user, path_to
from tests.wiring import ProcessServices

DONE = MemberFlags(started_onboarding=True, completed_onboarding=True, pending=False)


class Flags:
    """What Discord shows, as a dict: user -> flags (absent: not in the guild)."""

    def __init__(self, flags: dict[int, MemberFlags]) -> None:
        self.flags = flags

    def member_flags(self, guild_id: int, user_id: int,
                     eligibility_role_id: int | None) -> MemberFlags | None:
        return self.flags.get(user_id)


async def _settings(db: Database) -> None:
    async with db.transaction() as conn:  # every transition mirrored; the verified role synced
        await conn.execute(text(
            "INSERT INTO guild_settings (guild_id, log_channel_id, verified_role_id, "
            "mirror_level) VALUES (:g, 555, 777, 'all')"), {"g": GUILD})


async def _rows(db: Database, user: int) -> dict[str, Any]:
    async with db.autocommit() as conn:
        ledger = (await conn.execute(text(
            "SELECT version, operation, from_state, to_state, source, reason "
            "FROM member_transitions WHERE guild_id = :g AND user_id = :u ORDER BY version"),
            {"g": GUILD, "u": user})).all()
        outbox = (await conn.execute(text(
            "SELECT o.kind, o.channel_id, replace(o.lane, CAST(:u AS text), 'U') AS lane, "
            "o.payload - 'transition_id' - 'user_id' AS payload, t.version "
            "FROM outbox o LEFT JOIN member_transitions t ON t.guild_id = o.guild_id "
            "  AND t.user_id = :u AND t.id = CAST(o.payload->>'transition_id' AS bigint) "
            "WHERE o.guild_id = :g AND (o.payload->>'user_id' = CAST(:u AS text) "
            "  OR o.lane LIKE '%' || :u) ORDER BY o.id"), {"g": GUILD, "u": user})).all()
        member = (await conn.execute(text(
            "SELECT state, version FROM members WHERE guild_id = :g AND user_id = :u"),
            {"g": GUILD, "u": user})).one()
    return {"ledger": [tuple(r) for r in ledger], "member": tuple(member),
            "outbox": sorted((r.kind, r.channel_id, r.lane, str(r.payload), r.version)
                             for r in outbox)}


def _path(user: int) -> list[TransitionCommand]:
    return [cmd(op, user, reason="same") for op in path_to(State.VERIFIED)]


async def test_a_batch_writes_exactly_the_rows_of_the_single_path(
        services: ProcessServices) -> None:
    """The whole path to verified (the role grant included) for twenty members in one batch
    and for one member one write at a time: the same member, ledger and outbox rows."""
    await _settings(services.db)
    single = next_user()
    for command in _path(single):
        await services.transitions.apply(command)
    batched = [next_user() for _ in range(20)]
    work = [MemberWork(GUILD, u, deque(_path(u))) for u in batched]
    result = await services.services.batches.apply(work, Flags({}))
    steps = len(path_to(State.VERIFIED))
    assert result.applied == 20 * steps and result.single == 0
    assert result.statements == 2 * steps  # one read and one write per round, 20 members
    expected = await _rows(services.db, single)
    assert expected["outbox"], "the mirror and role rows are part of the comparison"
    for user in batched:
        assert await _rows(services.db, user) == expected
    await check_invariants(services.db)


async def test_a_member_that_loses_its_compare_and_set_is_finished_on_the_single_path(
        services: ProcessServices) -> None:
    """Another process writes two members between the batch's read and write (one of them
    left and rejoined: the same state, a newer version): their compare-and-sets fail
    inside the batch statement (the others' succeed), and the single path applies their
    operations after the other writer's, with no dead letter."""
    users = [next_user() for _ in range(5)]
    for user in users:
        await drive(services, user, State.ROLE_ELIGIBLE)
    raced, rejoined = users[2], users[3]
    other = services.another_process()

    async def web_app_first(_hit: object) -> None:
        await other.transitions.apply(cmd(Operation.ACCEPT_RULES, raced, source=Source.API))
        for op in (Operation.LEAVE, Operation.JOIN, Operation.COMPLETE_ONBOARDING,
                   Operation.MARK_ROLE_ELIGIBLE):  # back where the batch read it, v+4
            await other.transitions.apply(cmd(op, rejoined))

    services.faults.call(Point.MEMBERS_WRITE, web_app_first, times=1,
                         when=lambda hit: hit.user_id == raced)
    leaves = [MemberWork(GUILD, u, deque([cmd(Operation.LEAVE, u)])) for u in users]
    result = await services.services.batches.apply(leaves, Flags({}))
    assert services.metrics.conflicts["leave"] == 2  # the races happened inside the batch
    assert result.single == 2
    history = await services.transitions.history(GUILD, raced)
    assert [h.operation.value for h in history[:2]] == ["leave", "accept_rules"]
    for user in users:
        assert (await services.transitions.get_member(GUILD, user)).state == State.LEFT_GUILD  # type: ignore[union-attr]
    assert await count(services.db, "dead_letters") == 0
    await check_invariants(services.db)


async def test_a_member_with_a_write_in_flight_here_takes_turns_with_it(
        services: ProcessServices) -> None:
    """A web app write of one member is held at its write in this process: the batch does
    not wait for it (the other members are written), and that member's leave queues behind
    it on the single path."""
    users = [next_user() for _ in range(4)]
    for user in users:
        await drive(services, user, State.RULES_ACCEPTED)
    busy = users[0]
    gate = services.faults.hold(Point.MEMBERS_WRITE, when=lambda hit: hit.key == "web")
    web_app = asyncio.create_task(services.transitions.apply(
        cmd(Operation.REQUEST_VERIFICATION, busy, source=Source.API, key="web")))
    await gate.reached.wait()
    work = [MemberWork(GUILD, u, deque([cmd(Operation.LEAVE, u)])) for u in users]
    batch = asyncio.create_task(services.services.batches.apply(work, Flags({})))
    for user in users[1:]:
        while (await services.transitions.get_member(GUILD, user)).state != State.LEFT_GUILD:  # type: ignore[union-attr]
            await asyncio.sleep(0.01)
    assert (await services.transitions.get_member(GUILD, busy)).state == State.RULES_ACCEPTED  # type: ignore[union-attr]
    gate.release()
    await web_app
    result = await batch
    assert result.single == 1 and services.metrics.conflicts.get("leave", 0) == 0
    history = await services.transitions.history(GUILD, busy)
    assert [h.operation.value for h in history[:2]] == ["leave", "request_verification"]


async def test_syncs_and_repeats_in_batches(services: ProcessServices) -> None:
    """200 members synced to what Discord shows in a handful of statements; the same batch
    again (a replay after a crash) writes nothing."""
    users = [next_user() for _ in range(200)]
    view = Flags(dict.fromkeys(users, DONE))

    def work() -> list[MemberWork]:
        return [MemberWork(GUILD, u, deque([cmd(Operation.JOIN, u, key=f"join-{u}")]),
                           sync=True) for u in users]

    first = await services.services.batches.apply(work(), view)
    assert first.applied == 200 * 4 and first.single == 0
    assert first.statements <= 8  # 4 rounds of a read and a write: 0.01 per operation
    for user in users[::50]:
        history = await services.transitions.history(GUILD, user)
        assert [h.operation.value for h in reversed(history)] == [
            "join", "complete_onboarding", "mark_role_eligible", "accept_rules"]
    again = await services.services.batches.apply(work(), view)
    assert again.applied == 0 and services.metrics.transitions.get(
        ("join", "bot", "idempotent_repeat"), 0) == 200
    assert await count(services.db, "member_transitions") == 800
    await check_invariants(services.db)


async def test_a_member_left_to_the_single_path_is_synced_with_the_guilds_eligibility_role(
        services: ProcessServices) -> None:
    """A member with a web app write in flight goes to the single path without a batch
    read: the sync still knows the guild requires an eligibility role the member does not
    hold, and stops at onboarding_completed."""
    async with services.db.transaction() as conn:
        await conn.execute(text("INSERT INTO guild_settings (guild_id, eligibility_role_id) "
                                "VALUES (:g, 999)"), {"g": GUILD})
    user = next_user()
    await drive(services, user, State.JOINED)
    gate = services.faults.hold(Point.MEMBERS_WRITE, when=lambda hit: hit.key == "web")
    web_app = asyncio.create_task(services.transitions.apply(
        cmd(Operation.START_ONBOARDING, user, source=Source.API, key="web")))
    await gate.reached.wait()
    view = Flags({user: MemberFlags(started_onboarding=True, completed_onboarding=True,
                                    pending=False, holds_eligibility_role=False)})
    batch = asyncio.create_task(services.services.batches.apply(
        [MemberWork(GUILD, user, sync=True)], view))
    await asyncio.sleep(0.05)
    gate.release()
    await web_app
    assert (await batch).single == 1
    member = await services.transitions.get_member(GUILD, user)
    assert member is not None and member.state == State.ONBOARDING_COMPLETED


async def test_a_sync_after_an_operation_settled_without_a_write_still_runs(
        services: ProcessServices) -> None:
    """A join applied before (a replay: its key is in the ledger) and an update in one
    batch: the join writes nothing, and the sync brings the member to what Discord shows."""
    user = next_user()
    join = cmd(Operation.JOIN, user, key=f"join-{user}")
    await services.transitions.apply(join)
    work = [MemberWork(GUILD, user, deque([join]), sync=True)]
    result = await services.services.batches.apply(work, Flags({user: DONE}))
    assert result.applied == 3
    member = await services.transitions.get_member(GUILD, user)
    assert member is not None and member.state == State.RULES_ACCEPTED
