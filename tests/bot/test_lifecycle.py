"""Gateway events and member commands through the sandbox and the real discord.py bot."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from domain.ingest.pipeline import UNEXPECTED_RETRIES
from domain.persistence.faults import Point, connection_dropped
from tests.bot.world import World, eventually, setup_guild
from tests.helpers import check_invariants

STARTED = 8  # MemberFlags.started_onboarding
COMPLETED = 2  # MemberFlags.completed_onboarding


async def test_join_creates_a_joined_member(world: World) -> None:
    member = world.sandbox.member_join(world.guild, None, "newcomer")
    await world.wait_state(member.user.id, "joined")
    history = await world.container.transitions.history(world.guild.id, member.user.id)
    assert [h.operation.value for h in history] == ["join"]
    assert history[0].source.value == "bot"


async def test_whole_path_to_verified_grants_the_verified_role(world: World) -> None:
    await setup_guild(world)
    user = world.sandbox.member_join(world.guild, None, "alice").user.id
    await world.wait_state(user, "joined")
    world.sandbox.member_update(world.guild, user, flags=STARTED)
    await world.wait_state(user, "onboarding_in_progress")
    world.sandbox.member_update(world.guild, user, flags=STARTED | COMPLETED)
    # No eligibility role configured: eligibility follows onboarding automatically.
    await world.wait_state(user, "role_eligible")
    world.sandbox.member_update(world.guild, user, pending=False)
    await world.wait_state(user, "rules_accepted")
    answer = await world.ask(user, "verify")
    assert "verification request is in" in answer
    await world.wait_state(user, "verification_pending")
    answer = await world.ask(world.staff, "member verify", {"user": user})
    assert "verification_pending → verified" in answer
    await world.wait_state(user, "verified")
    change = await world.sandbox.wait_until(
        lambda: next((c for c in world.sandbox.role_changes
                      if c.user_id == user and c.role_id == world.verified_role
                      and c.action == "add" and c.source == "rest"), None),
        timeout=10, what="the verified role grant")
    assert change.guild_id == world.guild.id
    member = world.bot.get_guild(world.guild.id).get_member(user)  # type: ignore[union-attr]
    await eventually(lambda: _has_role(world, user), what="GUILD_MEMBER_UPDATE with the role")
    assert member is not None
    # Leaving the verified state (staff reverification) removes the role again.
    answer = await world.ask(world.staff, "member reverify", {"user": user})
    assert "verified → verification_pending" in answer
    await world.sandbox.wait_until(
        lambda: next((c for c in world.sandbox.role_changes if c.user_id == user
                      and c.action == "remove" and c.source == "rest"), None),
        timeout=10, what="the verified role removal")


async def _has_role(world: World, user: int) -> bool:
    guild = world.bot.get_guild(world.guild.id)
    member = guild.get_member(user) if guild else None
    return member is not None and member.get_role(world.verified_role) is not None


async def test_leaving_mid_onboarding(world: World) -> None:
    user = world.sandbox.member_join(world.guild, None, "bob").user.id
    await world.wait_state(user, "joined")
    world.sandbox.member_update(world.guild, user, flags=STARTED)
    await world.wait_state(user, "onboarding_in_progress")
    world.sandbox.member_leave(world.guild, user)
    await world.wait_state(user, "left_guild")
    assert await world.count("dead_letters") == 0


async def test_ban_then_unban_then_rejoin(world: World) -> None:
    user = world.sandbox.member_join(world.guild, None, "carol").user.id
    await world.wait_state(user, "joined")
    world.sandbox.ban(world.guild, user)  # GUILD_BAN_ADD and GUILD_MEMBER_REMOVE
    await world.wait_state(user, "banned")
    world.sandbox.unban(world.guild, user)
    await world.wait_state(user, "left_guild")
    world.sandbox.member_join(world.guild, user, "carol")
    await world.wait_state(user, "joined")
    history = await world.container.transitions.history(world.guild.id, user)
    assert [h.operation.value for h in reversed(history)] == ["join", "ban", "unban", "join"]
    # The GUILD_MEMBER_REMOVE that follows a ban is an echo, not a failure.
    assert await world.count("dead_letters") == 0


async def test_member_command_in_the_wrong_state_is_refused_and_writes_nothing(
        world: World) -> None:
    await setup_guild(world)
    user = world.sandbox.member_join(world.guild, None, "dave").user.id
    await world.wait_state(user, "joined")
    handle = world.sandbox.slash_command(world.guild, user, "verify")
    reply = await handle.wait_message()
    assert reply.ephemeral
    assert "'request_verification' is not allowed from state joined" in reply.content
    assert "allowed from: rules_accepted" in reply.content
    assert (await world.state(user)) == "joined"
    assert await world.count("member_transitions", "user_id = :u", u=user) == 1
    assert await world.count("dead_letters") == 0


async def test_staff_manual_verify_from_wrong_state_is_refused(world: World) -> None:
    await setup_guild(world)
    user = world.sandbox.member_join(world.guild, None, "erin").user.id
    await world.wait_state(user, "joined")
    answer = await world.ask(world.staff, "member verify", {"user": user})
    assert "not allowed from state joined" in answer
    assert (await world.state(user)) == "joined"


async def test_a_handler_failure_ends_as_a_dead_letter(world: World) -> None:
    # The join's write fails (the store raises, through the bot's fault seam).
    faults = world.container.services.stores.faults
    assert faults is not None
    failing = faults.fail(Point.MEMBERS_WRITE, lambda: RuntimeError("disk full"),
                          when=lambda hit: hit.operation == "join")
    try:
        user = world.sandbox.member_join(world.guild, None, "frank").user.id

        async def recorded() -> int:
            return await world.count("dead_letters", "user_id = :u", u=user)

        await eventually(recorded, what="a dead letter for the failed join")
    finally:
        faults.clear()
    # The batch statement failed with it, and again each time the batch was tried again;
    # then the member's own write on the single path (how a batch finds whose failure it
    # was), which does not retry an unexpected error: one dead letter.
    assert failing.fired == 1 + UNEXPECTED_RETRIES + 1
    assert await world.count("dead_letters") == 1
    assert await world.state(user) is None
    async with world.container.db.autocommit() as conn:
        row = (await conn.execute(text(
            "SELECT * FROM dead_letters WHERE user_id = :u"), {"u": user})).one()._mapping
    assert row["operation"] == "join" and row["reason_code"] == "unexpected_error"
    assert row["source"] == "bot" and "disk full" in row["error_message"]
    assert row["payload"]["idempotency_key"].startswith("gw:join:")
    # Staff replay it once the cause is gone: the member is written as joined.
    outcome = await world.container.remediation.retry(world.guild.id, row["id"], world.staff)
    assert outcome.resolved and await world.state(user) == "joined"


async def test_screening_passed_before_onboarding_is_applied_once_onboarding_is_done(
        world: World) -> None:
    """Level-triggered: screening passed before any onboarding implies nothing yet (the
    member stays `joined`, no dead letter); once onboarding is done, the member is brought
    to what Discord shows, screening included."""
    await setup_guild(world)
    user = world.sandbox.member_join(world.guild, None, "gina").user.id
    await world.wait_state(user, "joined")
    world.sandbox.member_update(world.guild, user, pending=False)
    world.sandbox.member_update(world.guild, user, flags=STARTED | COMPLETED)
    await world.wait_state(user, "rules_accepted")
    history = await world.container.transitions.history(world.guild.id, user)
    assert [h.operation.value for h in reversed(history)] == [
        "join", "complete_onboarding", "mark_role_eligible", "accept_rules"]
    assert await world.count("dead_letters") == 0


async def test_bunched_updates_of_many_members_leave_each_as_discord_shows_them(
        world: World) -> None:
    """A burst of 300 members (1,200 events), each member's updates arriving together,
    faster than they are written: whatever each handler sees, every member ends in the
    state Discord shows, nothing is written twice, nothing becomes a dead letter, and the
    workers wrote them many members per statement."""
    await setup_guild(world)
    ingestion = world.container.ingestion
    assert ingestion is not None
    statements, operations = ingestion.statements, ingestion.batched_operations
    users = [world.sandbox.member_join(world.guild, None, f"raid{i}").user.id
             for i in range(300)]
    for user in users:
        world.sandbox.member_update(world.guild, user, flags=STARTED)
        world.sandbox.member_update(world.guild, user, flags=STARTED | COMPLETED)
        world.sandbox.member_update(world.guild, user, pending=False)
    for user in users:
        await world.wait_state(user, "rules_accepted", timeout=30)
    assert await world.count("dead_letters") == 0
    assert await world.count("member_transitions", "user_id = ANY(:u)", u=users) == 300 * 4
    await check_invariants(world.container.db)
    assert ingestion.batched_operations - operations == 1200  # all of them batched
    # Reads and writes together, at least five operations per statement on average (the
    # batches are as large as the events that wait when a worker comes back for more).
    assert (ingestion.statements - statements) * 5 <= 1200


async def test_a_member_update_whose_database_read_fails_is_not_lost(world: World) -> None:
    """The batch read of a member update fails as if the database were gone: the worker
    applies the same events again once it answers, instead of the update vanishing."""
    await setup_guild(world)
    user = world.sandbox.member_join(world.guild, None, "otto").user.id
    await world.wait_state(user, "joined")
    faults = world.container.services.stores.faults
    assert faults is not None
    dropped = faults.fail(Point.MEMBERS_READ, connection_dropped, times=1,
                          when=lambda hit: hit.user_id == user)
    world.sandbox.member_update(world.guild, user, flags=STARTED | COMPLETED)
    await world.wait_state(user, "role_eligible")
    assert dropped.fired == 1
    assert await world.count("dead_letters") == 0


async def test_non_staff_member_regranted_the_command_is_still_refused(world: World) -> None:
    await setup_guild(world)
    outsider = world.sandbox.member_join(world.guild, None, "mallory", pending=False).user.id
    target = world.sandbox.member_join(world.guild, None, "victim").user.id
    await world.wait_state(target, "joined")
    world.sandbox.grant_command(world.guild, "member", outsider)
    answer = await world.ask(outsider, "member kick", {"user": target})
    assert "for staff" in answer
    assert await world.state(target) == "joined"
    assert not world.sandbox.calls_to("DELETE", "/guilds/{guild_id}/members/{user_id}")


async def test_staff_kick_records_and_kicks(world: World) -> None:
    await setup_guild(world)
    user = world.sandbox.member_join(world.guild, None, "harry").user.id
    await world.wait_state(user, "joined")
    answer = await world.ask(world.staff, "member kick", {"user": user, "reason": "spam"})
    assert "joined → kicked" in answer
    await world.sandbox.wait_until(
        lambda: world.sandbox.calls_to("DELETE", "/guilds/{guild_id}/members/{user_id}"),
        what="the kick call")
    assert await world.state(user) == "kicked"  # the GUILD_MEMBER_REMOVE echo changed nothing
    history = await world.container.transitions.history(world.guild.id, user)
    assert history[0].source.value == "staff" and history[0].actor_id == world.staff
    assert history[0].reason == "spam"
    show = await world.ask(world.staff, "member show", {"user": user})
    assert "state **kicked**, version 2" in show


async def test_a_guild_that_is_not_set_up_gets_a_pointer_to_setup(world: World) -> None:
    answer = await world.ask(world.staff, "member show", {"user": world.owner})
    assert "/lifeline setup" in answer


async def test_an_update_the_lifecycle_does_not_read_does_no_database_work(
        world: World) -> None:
    await setup_guild(world)
    user = world.sandbox.member_join(world.guild, None, "nina").user.id
    await world.wait_state(user, "joined")
    faults = world.container.services.stores.faults
    assert faults is not None and world.container.ingestion is not None
    reads = faults.hits[Point.MEMBERS_READ]
    logged = world.container.ingestion.log.appended
    for i in range(5):  # nickname changes: nothing the lifecycle reads
        world.sandbox.member_update(world.guild, user, nick=f"nina {i}")
    # The bot has read the five renames (their handlers run as it reads each one), and
    # only then does the flag change come: a handler that ran after the flag change had
    # reached discord.py's cache would see it in `after` (the cached member).
    guild = world.bot.get_guild(world.guild.id)
    assert guild is not None
    await world.sandbox.wait_until(
        lambda: (m := guild.get_member(user)) is not None and m.nick == "nina 4",
        what="the renames read by the bot")
    assert faults.hits[Point.MEMBERS_READ] == reads
    assert world.container.ingestion.log.appended == logged  # not even logged
    world.sandbox.member_update(world.guild, user, flags=STARTED)
    await world.wait_state(user, "onboarding_in_progress")
    assert faults.hits[Point.MEMBERS_READ] - reads == 1  # one read, its write, done
    assert world.container.ingestion.log.appended == logged + 1


async def test_a_members_bunched_events_apply_in_gateway_order(world: World) -> None:
    """An update, then leave, rejoin and another update queued while the first is held:
    they apply in gateway order. The first update's sync does not run ahead of the queued
    leave and join (it would write the new stint's flags onto the old one); the rejoin's
    sync brings the member to what Discord shows."""
    await setup_guild(world)
    user = world.sandbox.member_join(world.guild, None, "yoyo").user.id
    await world.wait_state(user, "joined")
    faults = world.container.services.stores.faults
    assert faults is not None and world.container.ingestion is not None
    gate = faults.hold(Point.MEMBERS_READ, when=lambda hit: hit.user_id == user)
    try:
        world.sandbox.member_update(world.guild, user, flags=STARTED)
        await asyncio.wait_for(gate.reached.wait(), 10)
        world.sandbox.member_leave(world.guild, user)
        world.sandbox.member_join(world.guild, user, "yoyo")
        world.sandbox.member_update(world.guild, user, flags=STARTED | COMPLETED)
        await world.sandbox.wait_until(
            lambda: world.container.ingestion.status().backlog >= 4,  # type: ignore[union-attr]
            what="the member's events logged behind the held one")
    finally:
        gate.release()
    await world.wait_state(user, "role_eligible")
    history = await world.container.transitions.history(world.guild.id, user)
    assert [h.operation.value for h in reversed(history)] == [
        "join", "leave", "join", "complete_onboarding", "mark_role_eligible"]


async def test_a_held_worker_does_not_stop_the_others(world: World) -> None:
    """One worker waits on the database (its batch held); members of the other workers
    are applied meanwhile: workers never wait on each other."""
    ingestion = world.container.ingestion
    faults = world.container.services.stores.faults
    assert faults is not None and ingestion is not None
    held = world.sandbox.member_join(world.guild, None, "held").user.id
    await world.wait_state(held, "joined")
    gate = faults.hold(Point.MEMBERS_READ, when=lambda hit: hit.user_id == held)
    try:
        world.sandbox.member_update(world.guild, held, flags=STARTED)
        await asyncio.wait_for(gate.reached.wait(), 10)
        others = [world.sandbox.member_join(world.guild, None, f"free{i}").user.id
                  for i in range(12)]
        free = [u for u in others
                if ingestion.partition_of(world.guild.id, u)
                != ingestion.partition_of(world.guild.id, held)]
        assert free, "some members belong to another worker"
        for user in free:
            await world.wait_state(user, "joined", timeout=5)
        assert await world.state(held) == "joined"  # still held
    finally:
        gate.release()
    await world.wait_state(held, "onboarding_in_progress")


async def test_a_gateway_event_whose_dead_letter_cannot_be_written_is_not_lost(
        world: World) -> None:
    """The join's write fails, and the connection drops while its dead letter is written:
    neither reached the database, so the event stays in the ingest log and is applied
    again; it ends as exactly one dead letter."""
    faults = world.container.services.stores.faults
    assert faults is not None
    faults.fail(Point.MEMBERS_WRITE, lambda: RuntimeError("disk full"),
                when=lambda hit: hit.operation == "join")
    dropped = faults.fail(Point.DEAD_LETTERS_INSERT, connection_dropped, times=1)
    try:
        user = world.sandbox.member_join(world.guild, None, "gina").user.id

        async def recorded() -> int:
            return await world.count("dead_letters", "user_id = :u", u=user)

        await eventually(recorded, timeout=20, what="the join's dead letter")
    finally:
        faults.clear()
    assert dropped.fired == 1
    assert await world.count("dead_letters", "user_id = :u", u=user) == 1
