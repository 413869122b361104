"""Events the bot missed while it was down are caught up when it connects again."""

from __future__ import annotations

from typing import Any

from domain.lifecycle import Operation, Source
from sandbox import Sandbox, SandboxConfig
from tests.bot.world import eventually, make_container, run_bot, start_world
from tests.helpers import check_invariants, cmd

STARTED, COMPLETED = 8, 2


async def _written(bot: Any, guild_id: int) -> tuple[int, int]:
    """What the bot's reconcile of the guild wrote, as it logs it once applied."""
    cog = bot.get_cog("LifecycleCog")
    return await eventually(lambda: _report(cog, guild_id), what="the reconcile's report")


async def _report(cog: Any, guild_id: int) -> tuple[int, int] | None:
    return cog.reconcile_written.get(guild_id)  # type: ignore[no-any-return]


async def test_missed_events_are_caught_up_on_reconnect_without_double_application(
        clean_db) -> None:  # type: ignore[no-untyped-def]
    async with Sandbox(SandboxConfig()) as sandbox:
        world, runner = await start_world(sandbox, clean_db)
        stayed = sandbox.member_join(world.guild, None, "stayed").user.id
        gone = sandbox.member_join(world.guild, None, "gone").user.id
        await world.wait_state(stayed, "joined")
        await world.wait_state(gone, "joined")
        await runner.__aexit__(None, None, None)  # the bot is down

        newcomer = sandbox.member_join(world.guild, None, "newcomer").user.id
        sandbox.member_update(world.guild, newcomer, flags=STARTED | COMPLETED)
        sandbox.member_update(world.guild, newcomer, pending=False)
        sandbox.member_update(world.guild, stayed, flags=STARTED)
        sandbox.member_leave(world.guild, gone)

        async with run_bot(sandbox, make_container(clean_db)) as bot:
            world.bot = bot
            await world.wait_state(newcomer, "rules_accepted")
            await world.wait_state(stayed, "onboarding_in_progress")
            await world.wait_state(gone, "left_guild")
            history = await world.container.transitions.history(world.guild.id, newcomer)
            assert [h.operation.value for h in reversed(history)] == [
                "join", "complete_onboarding", "mark_role_eligible", "accept_rules"]
            # What it wrote, not what it queued: the newcomer's 4, stayed's 1, gone's leave.
            assert await _written(bot, world.guild.id) == (6, 3)
        # Another reconnect finds nothing to do: the keys make catching up idempotent.
        async with run_bot(sandbox, make_container(clean_db)) as bot:
            cog = bot.get_cog("LifecycleCog")
            guild = bot.get_guild(world.guild.id)
            assert cog is not None and guild is not None
            assert await cog.reconcile(guild) == 0  # type: ignore[attr-defined]
        # owner + staffer (caught up at the first start) + stayed + gone joins, stayed's
        # start, the newcomer's four operations, gone's leave.
        assert await world.count("member_transitions") == 4 + 1 + 4 + 1
        assert await world.count("dead_letters") == 0
        await check_invariants(clean_db)


async def test_reconcile_re_admits_a_member_the_database_holds_as_gone(
        clean_db) -> None:  # type: ignore[no-untyped-def]
    """The web app marked a member as left (or a reconcile ran on an incomplete member
    list) while Discord shows them present: the next reconcile re-admits them with a key
    of its own (the original join's key would only be a repeat), and onboards them as
    their flags say."""
    async with Sandbox(SandboxConfig()) as sandbox:
        world, runner = await start_world(sandbox, clean_db)
        user = sandbox.member_join(world.guild, None, "still-here").user.id
        await world.wait_state(user, "joined")
        await runner.__aexit__(None, None, None)  # the bot is down
        await world.container.transitions.apply(cmd(Operation.LEAVE, user, world.guild.id,
                                                     source=Source.API))
        sandbox.member_update(world.guild, user, flags=STARTED)
        async with run_bot(sandbox, make_container(clean_db)) as bot:
            world.bot = bot
            await world.wait_state(user, "onboarding_in_progress")
            assert await _written(bot, world.guild.id) == (2, 1)
        history = await world.container.transitions.history(world.guild.id, user)
        assert [h.operation.value for h in reversed(history)] == [
            "join", "leave", "join", "start_onboarding"]
        assert history[1].idempotency_key.startswith("sync:join:")
        await check_invariants(clean_db)
