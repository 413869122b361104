"""Hostile slash-command input: a clear answer, nothing written."""

from __future__ import annotations

import pytest

from tests.bot.world import World, setup_guild


@pytest.mark.parametrize("raw", ["-5", "abc", "99999999999999999999999", "0", "#", "1e3",
                                 "١٢", "'; DROP TABLE dead_letters; --"])
async def test_bad_ids_get_a_clear_answer_and_change_nothing(world: World, raw: str) -> None:
    await setup_guild(world)
    for command, options in (("dlq show", {"id": raw}), ("dlq retry", {"id": raw}),
                             ("dlq resolve", {"id": raw, "note": "x"}),
                             ("dlq dismiss", {"id": raw, "note": "x"}),
                             ("dlq reopen", {"id": raw})):
        answer = await world.ask(world.staff, command, options)
        assert answer.startswith("❌") and ("is not a dead-letter id" in answer
                                           or "does not exist in this guild" in answer), answer
    assert await world.count("remediation_actions") == 0
    assert await world.count("dead_letters") == 0
