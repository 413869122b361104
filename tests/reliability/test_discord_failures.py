"""Discord misbehaving: 500 bursts, 429 storms, gateway disconnects. Nothing crashes,
deliveries are retried, events are handled once."""

from __future__ import annotations

import time
from typing import Any

from bot.formatting import remediation_line
from domain.mirror import remediation_facts
from tests.bot.world import World, eventually, setup_guild
from tests.helpers import check_invariants

ROUTE = "/channels/{channel_id}/messages"


def _facts(tag: str, i: int) -> dict[str, Any]:
    """A remediation record whose outcome reads "<tag> <i>"."""
    entry = {"id": i + 1, "user_id": 10**17 + i, "operation": "verify",
             "from_state": "verification_pending", "to_state": "verified"}
    return remediation_facts("retry", 10**17, entry, f"{tag} {i:03d}", None, None)


def _expected(tag: str, n: int) -> list[str]:
    return [remediation_line(_facts(tag, i)) for i in range(n)]


async def _mirror(world: World, n: int, tag: str) -> None:
    await world.container.services.stores.outbox.enqueue_mirror(
        (world.guild.id, _facts(tag, i)) for i in range(n))


async def _delivered(world: World) -> bool:
    return await world.count("outbox", "status <> 'delivered'") == 0


def _lines(world: World, tag: str) -> list[str]:
    return [line for m in world.sandbox.messages(world.log_channel)
            for line in m.lines() if f"): {tag} " in line]


async def test_a_burst_of_500s_is_retried_and_delivered_once(world: World) -> None:
    await setup_guild(world, mirror_level="remediation")
    world.sandbox.inject_fault("POST", ROUTE, 500, count=2)
    await _mirror(world, 30, "five-hundred")
    await eventually(lambda: _delivered(world), timeout=60, what="delivery after 500s")
    assert _lines(world, "five-hundred") == _expected("five-hundred", 30)
    assert world.bot.gateway_connected


async def test_a_429_storm_with_long_retry_after_is_honoured(world: World) -> None:
    await setup_guild(world, mirror_level="remediation")
    world.sandbox.inject_fault("POST", ROUTE, 429, count=2, retry_after=2.0)
    t0 = time.monotonic()
    await _mirror(world, 10, "storm")
    await eventually(lambda: _delivered(world), timeout=60, what="delivery after 429s")
    assert time.monotonic() - t0 >= 2.0  # it waited as told, it did not hammer
    posts = world.sandbox.calls_to("POST", ROUTE)
    assert sum(1 for c in posts if c.status == 429) == 2
    assert _lines(world, "storm") == _expected("storm", 10)


async def test_gateway_disconnect_resume_and_reidentify_handle_every_event_once(
        world: World) -> None:
    first = world.sandbox.member_join(world.guild, None, "before").user.id
    await world.wait_state(first, "joined")
    # A dropped connection: discord.py resumes and the sandbox replays what it missed.
    world.sandbox.disconnect()
    during = world.sandbox.member_join(world.guild, None, "during-resume").user.id
    await world.wait_state(during, "joined", timeout=30)
    # A session Discord invalidates: discord.py identifies anew; the member who joined in
    # between is caught up from the guild's state.
    world.sandbox.disconnect(invalidate=True)
    missed = world.sandbox.member_join(world.guild, None, "during-reidentify").user.id
    await world.wait_state(missed, "joined", timeout=60)
    after = world.sandbox.member_join(world.guild, None, "after").user.id
    await world.wait_state(after, "joined", timeout=30)
    for user in (first, during, missed, after):
        assert await world.count("member_transitions", "user_id = :u", u=user) == 1
    assert await world.count("dead_letters") == 0
    await check_invariants(world.container.db)
