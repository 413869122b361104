"""Role drift repair against a real PostgreSQL: which members get a role change queued, on
which lane, with which payload; what is left alone; and that a second repair repeats
nothing. (The whole path through discord.py and the sandbox: tests/bot/test_role_repair.py.)"""

from __future__ import annotations

import json
import time

from sqlalchemy import text

from domain.lifecycle import Operation, State
from domain.persistence.database import Database
from domain.persistence.role_drift import RoleFix
from domain.role_drift import BATCH, DEMOTED_TO
from tests.helpers import GUILD, OTHER_GUILD, cmd, count, drive, next_user
from tests.wiring import ProcessServices

VERIFIED_ROLE = 777_000_000_000_000_001


async def set_up(services: ProcessServices, guild: int = GUILD) -> None:
    await services.guilds.setup(guild, log_channel_id=None, staff_role_ids=[],
                                verified_role_id=VERIFIED_ROLE, eligibility_role_id=None,
                                mirror_level="dead_letters")


async def deliver_everything(db: Database) -> None:
    """What the outbox worker would do: the role rows the transitions queued are delivered."""
    async with db.transaction() as conn:
        await conn.execute(text("UPDATE outbox SET status = 'delivered', delivered_at = now()"))


async def repair_rows(db: Database) -> list[tuple[int, str, str, dict[str, object]]]:
    async with db.autocommit() as conn:
        rows = (await conn.execute(text(
            "SELECT guild_id, lane, kind, payload FROM outbox "
            "WHERE payload ? 'repair' ORDER BY id"))).all()
    return [(r.guild_id, r.lane, r.kind, r.payload if isinstance(r.payload, dict)
             else json.loads(r.payload)) for r in rows]


async def test_repair_grants_removes_and_leaves_a_hand_given_role_alone(
        services: ProcessServices) -> None:
    await set_up(services)
    lost_role, demoted, hand_given, fine, unknown = (next_user() for _ in range(5))
    await drive(services, lost_role, State.VERIFIED)
    await drive(services, fine, State.VERIFIED)
    await drive(services, demoted, State.VERIFIED)
    await services.transitions.apply(cmd(Operation.REVERIFY, demoted))
    await drive(services, hand_given, State.RULES_ACCEPTED)
    await deliver_everything(services.db)
    holdings = [(lost_role, False), (demoted, True), (hand_given, True), (fine, True),
                (unknown, True)]

    counts = await services.services.role_drift.repair(GUILD, VERIFIED_ROLE, holdings)

    assert (counts.granted, counts.removed, counts.already_right) == (1, 1, 1)
    assert (counts.left_alone, counts.untracked, counts.waiting) == (1, 1, 0)
    assert await repair_rows(services.db) == [
        (GUILD, f"member:{GUILD}:{user}", "role_sync",
         {"user_id": user, "role_id": VERIFIED_ROLE, "action": action, "version": version,
          "repair": True})
        for user, action, version in sorted([(lost_role, "add", 6), (demoted, "remove", 7)])]
    # The rows are not delivered yet: a second repair waits for them, queues nothing.
    again = await services.services.role_drift.repair(GUILD, VERIFIED_ROLE, holdings)
    assert (again.granted, again.removed, again.waiting) == (0, 0, 2)
    # Delivered (Discord now shows the changes): everything is right, nothing queued.
    await deliver_everything(services.db)
    fixed = [(lost_role, True), (demoted, False), (hand_given, True), (fine, True)]
    third = await services.services.role_drift.repair(GUILD, VERIFIED_ROLE, fixed)
    assert (third.granted, third.removed, third.already_right, third.left_alone) == (0, 0, 3, 1)
    assert await count(services.db, "outbox", "payload ? 'repair'") == 2


async def test_a_member_whose_state_moved_since_the_read_gets_no_repair_row(
        services: ProcessServices) -> None:
    """The version read is the condition of the write: the transition that moved the
    member queued the role change its state calls for."""
    await set_up(services)
    user = next_user()
    await drive(services, user, State.VERIFIED)
    (member,) = await services.stores.role_drift.read(GUILD, [user], DEMOTED_TO)
    await services.transitions.apply(cmd(Operation.REVERIFY, user))
    queued = await services.stores.role_drift.queue(
        GUILD, VERIFIED_ROLE, [RoleFix(user, "add", member.version)])
    assert queued == {}
    assert await repair_rows(services.db) == []


async def test_repair_is_scoped_to_its_guild(services: ProcessServices) -> None:
    """The same user verified in another guild is nothing to this guild's repair, and the
    verified role of another guild's settings is never used."""
    await set_up(services)
    await set_up(services, OTHER_GUILD)
    user = next_user()
    await drive(services, user, State.VERIFIED, OTHER_GUILD)
    await deliver_everything(services.db)
    counts = await services.services.role_drift.repair(GUILD, VERIFIED_ROLE, [(user, False)])
    assert (counts.granted, counts.untracked) == (0, 1)
    queued = await services.stores.role_drift.queue(
        GUILD, VERIFIED_ROLE + 1, [RoleFix(user, "add", 6)])
    assert queued == {}
    assert await repair_rows(services.db) == []


async def test_a_big_guild_is_repaired_in_batches(services: ProcessServices) -> None:
    """More members than one batch: every verified member without the role gets exactly
    one role row, in a handful of statements (the time is printed with -s)."""
    await set_up(services)
    members = BATCH * 2 + 500
    users = [next_user() for _ in range(members)]
    async with services.db.transaction() as conn:
        await conn.execute(text(
            "INSERT INTO members (guild_id, user_id, state, version) "
            "SELECT :g, u, 'verified', 1 FROM unnest(CAST(:us AS bigint[])) AS u"),
            {"g": GUILD, "us": users})
    started = time.perf_counter()
    counts = await services.services.role_drift.repair(
        GUILD, VERIFIED_ROLE, [(u, n % 2 == 0) for n, u in enumerate(users)])
    print(f"role repair of {members} members: {time.perf_counter() - started:.2f}s")
    assert (counts.granted, counts.already_right) == (members // 2, members - members // 2)
    assert await count(services.db, "outbox", "payload ? 'repair'") == members // 2
