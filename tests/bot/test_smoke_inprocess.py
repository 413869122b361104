from __future__ import annotations

from tests.bot.conftest import World, setup_guild


async def test_bot_logs_in_syncs_and_answers_setup(world: World) -> None:
    reply = await setup_guild(world)
    print(reply)
    assert "set up" in str(reply)
