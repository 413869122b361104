"""Role drift repaired through the real bot and the sandbox: the verified role taken from a
verified member, given back to a member Lifeline moved out of verified, and given by hand
to a member never verified; `/lifeline repair`, `/lifeline status repair:True` and the
reconcile at connect put right exactly the first two, through the outbox."""

from __future__ import annotations

from domain.lifecycle import Operation, Source
from sandbox import Sandbox, SandboxConfig
from tests.bot.roles import holds, outbox_idle, verify
from tests.bot.world import World, make_container, run_bot, setup_guild, start_world
from tests.helpers import check_invariants, cmd


async def drift(world: World) -> tuple[int, int, int]:
    """Three members whose verified role Discord shows wrong; answers (lost its role,
    demoted but holds it, never verified but holds it)."""
    sandbox, guild, role = world.sandbox, world.guild, world.verified_role
    lost, demoted, hand_given = (sandbox.member_join(guild, None, name).user.id
                                 for name in ("lost", "demoted", "hand-given"))
    for user in (lost, demoted, hand_given):
        await world.wait_state(user, "joined")
    await verify(world, lost)
    await verify(world, demoted)
    await world.container.transitions.apply(cmd(Operation.REVERIFY, demoted, world.guild.id,
                                                 source=Source.API))
    await holds(world, demoted, False)
    await outbox_idle(world)
    # What people and other bots do in Discord, through the sandbox's control API.
    sandbox.member_update(guild, lost, roles=[])
    sandbox.member_update(guild, demoted, roles=[role])
    sandbox.member_update(guild, hand_given, roles=[role])
    await holds(world, lost, False)
    await holds(world, demoted, True)
    await holds(world, hand_given, True)
    return lost, demoted, hand_given


def bot_role_changes(world: World, since: int) -> list[tuple[int, str]]:
    return [(c.user_id, c.action) for c in world.sandbox.role_changes[since:]
            if c.role_id == world.verified_role and c.source == "rest"]


async def test_repair_grants_and_removes_exactly_the_drifted_roles(world: World) -> None:
    await setup_guild(world)
    lost, demoted, hand_given = await drift(world)
    since = len(world.sandbox.role_changes)

    answer = await world.ask(world.staff, "lifeline repair")

    # owner and staffer (joined, no role) are right; the hand-given role is left alone.
    assert "granted 1, removed 1, already right 2; 1 left alone" in answer
    await world.sandbox.wait_until(lambda: len(bot_role_changes(world, since)) >= 2,
                                   what="the grant and the removal")
    await outbox_idle(world)
    assert sorted(bot_role_changes(world, since)) == sorted([(lost, "add"),
                                                             (demoted, "remove")])
    await holds(world, lost, True)
    await holds(world, demoted, False)
    # A second repair finds nothing to do.
    again = await world.ask(world.staff, "lifeline repair")
    assert "granted 0, removed 0, already right 4; 1 left alone" in again
    await outbox_idle(world)
    assert len(bot_role_changes(world, since)) == 2
    assert await world.state(hand_given) == "joined"
    await check_invariants(world.container.db)


async def test_status_repairs_when_asked_and_only_then(world: World) -> None:
    await setup_guild(world)
    lost, _, _ = await drift(world)
    plain = await world.ask(world.staff, "lifeline status")
    assert "Role repair" not in plain
    assert await world.count("outbox", "payload ? 'repair'") == 0
    answer = await world.ask(world.staff, "lifeline status", {"repair": True})
    assert "**Role repair**: granted 1, removed 1, already right 2" in answer
    await holds(world, lost, True)


async def test_repair_is_for_staff_only(world: World) -> None:
    await setup_guild(world)
    await drift(world)
    outsider = world.sandbox.member_join(world.guild, None, "mallory", pending=False).user.id
    world.sandbox.grant_command(world.guild, "lifeline", outsider)
    answer = await world.ask(outsider, "lifeline repair")
    assert "for staff" in answer
    assert await world.count("outbox", "payload ? 'repair'") == 0


async def test_drift_while_the_bot_was_away_is_repaired_at_connect(clean_db) -> None:  # type: ignore[no-untyped-def]
    async with Sandbox(SandboxConfig()) as sandbox:
        world, runner = await start_world(sandbox, clean_db)
        await setup_guild(world)
        user = sandbox.member_join(world.guild, None, "verified").user.id
        await world.wait_state(user, "joined")
        await verify(world, user)
        await outbox_idle(world)
        await runner.__aexit__(None, None, None)  # the bot is down
        sandbox.member_update(world.guild, user, roles=[])
        since = len(sandbox.role_changes)
        async with run_bot(sandbox, make_container(clean_db)) as bot:
            world.bot = bot
            await holds(world, user, True)
            await outbox_idle(world)
        assert bot_role_changes(world, since) == [(user, "add")]
