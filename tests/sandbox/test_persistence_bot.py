"""Lifeline on a sandbox restarted from its data directory (what `python -m bot sandbox
--serve` does after a kill): the same server comes back, and what changed while the bot was
down is caught up by its reconcile, not replayed twice."""

from __future__ import annotations

from pathlib import Path

from sandbox import Sandbox, SandboxConfig
from tests.bot.world import make_container, run_bot, setup_guild, start_world

STARTED = 8


def _config(data_dir: Path) -> SandboxConfig:
    return SandboxConfig(data_dir=data_dir, save_delay=0.01)


async def test_lifeline_catches_up_with_a_restarted_sandbox(
        clean_db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with Sandbox(_config(tmp_path)) as before:
        world, runner = await start_world(before, clean_db)
        await setup_guild(world)
        alice = before.member_join(world.guild, None, "alice").user.id
        await world.wait_state(alice, "joined")
        await runner.__aexit__(None, None, None)  # the bot goes down first...
        bob = before.member_join(world.guild, None, "bob").user.id  # never seen by the bot
        before.member_update(world.guild, alice, flags=STARTED)
    # ... then the sandbox; both start again, the sandbox from its saved world.
    async with Sandbox(_config(tmp_path)) as after:
        assert after.resumed
        async with run_bot(after, make_container(clean_db)) as bot:
            world.sandbox, world.bot, world.guild = after, bot, after.guild(world.guild.id)
            await world.wait_state(bob, "joined")
            await world.wait_state(alice, "onboarding_in_progress")
            # The staff role's grant of /dlq survived: staff still run it.
            assert "No dead letters match" in await world.ask(world.staff, "dlq list")
    # owner + staffer + alice at the first start, then bob's join and alice's start.
    assert await world.count("member_transitions") == 3 + 2
