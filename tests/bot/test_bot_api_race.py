"""The heart of the product: the bot and the web app write the same members at once.

50 members: the web app (HTTP API) verifies or requests verification while the bot handles
the member's leave or ban from the gateway, at the same moment. Once with the API inside
the test's process, once with the API as its own `python -m bot api` process.

Left to timing alone, the race ended the same way in every run (the exit first), so the
outcomes the lifecycle spec allows are also made to happen, through the bot's fault seam
(`world.container.services.stores.faults`): for a third of the members one writer is held
at its write, after its read, until the other is in flight. The last third races freely.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from bot.api.server import ApiServer
from domain.commands import TransitionCommand
from domain.lifecycle import Source, State
from domain.metrics import CountingMetrics
from domain.persistence.database import Database
from domain.persistence.faults import Faults, Hit, Point
from sandbox import Sandbox, SandboxConfig
from tests.bot.world import World, start_world
from tests.helpers import check_invariants, path_to
from tests.scale.procs import API_TOKEN, start_api

# (what the web app does, what the member does in Discord, the state both start from)
PAIRS = [("verify", "leave", "verification_pending")] * 20 + \
        [("verify", "ban", "verification_pending")] * 15 + \
        [("request_verification", "leave", "rules_accepted")] * 15
FINAL = {"leave": "left_guild", "ban": "banned"}
# How each member's two writes meet, by its index in PAIRS (every kind of pair gets each).
WEB_APP_FIRST, EXIT_FIRST, FREE = "web app first", "exit first", "free race"
PLANS = [(WEB_APP_FIRST, EXIT_FIRST, FREE)[i % 3] for i in range(len(PAIRS))]
# What the spec allows: both applied, the web app's write first; or the exit first and the
# web app refused, as it would be without the race, whether or not the two writers share a
# process (lifecycle.md, "How a transition is written", 6: no dead letter for a caller who
# waits).
BOTH_APPLIED = "both applied (web app first)"
REFUSED = "web app refused (exit first)"
DEAD_LETTERED = "web app dead-lettered (lost the race)"
# Time for a request just sent to reach the service (in process: to queue for the member's
# turn behind the held writer). Waiting less changes nothing in the outcome, only how
# much the two writes overlap.
IN_FLIGHT = 0.1


async def _prepare(world: World, start_state: str) -> int:
    user = world.sandbox.member_join(world.guild, None, f"racer-{uuid.uuid4().hex[:6]}").user.id
    await world.wait_state(user, "joined")
    for op in path_to(State(start_state))[1:]:  # the join came from the gateway
        await world.container.transitions.apply(TransitionCommand(
            guild_id=world.guild.id, user_id=user, operation=op, source=Source.API,
            idempotency_key=uuid.uuid4().hex))
    return user


def _faults(world: World) -> Faults:
    faults = world.container.services.stores.faults
    assert faults is not None
    return faults


def _web_app_write(user: int) -> Any:
    return lambda hit: hit.key == f"race-{user}"


def _exit_write(user: int, gateway_op: str) -> Any:
    def matches(hit: Hit) -> bool:
        return hit.user_id == user and hit.operation == gateway_op
    return matches


async def _race(world: World, base_url: str, spread: float, *, api_in_process: bool
                ) -> Counter[tuple[str, str]]:
    """Each member's web app request and gateway exit, met as PLANS says; the outcome of
    each (plan, outcome) counted."""
    users = [await _prepare(world, start) for _, _, start in PAIRS]
    faults = _faults(world)
    answers: dict[int, tuple[int, dict[str, Any]]] = {}
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {API_TOKEN}"},
                                 timeout=30) as client:

        async def web_app(user: int, operation: str) -> None:
            resp = await client.post(
                f"{base_url}/api/v1/guilds/{world.guild.id}/members/{user}/transitions",
                json={"operation": operation, "idempotency_key": f"race-{user}"})
            answers[user] = (resp.status_code, resp.json())

        def member_exits(user: int, gateway_op: str) -> None:
            if gateway_op == "leave":
                world.sandbox.member_leave(world.guild, user)
            else:
                world.sandbox.ban(world.guild, user)

        async def web_app_first(user: int, api_op: str, gateway_op: str) -> None:
            if api_in_process:
                # The web app holds the member's turn at its write; the exit queues behind.
                gate = faults.hold(Point.MEMBERS_WRITE, when=_web_app_write(user))
                request = asyncio.create_task(web_app(user, api_op))
                await asyncio.wait_for(gate.reached.wait(), 10)
                member_exits(user, gateway_op)
                await asyncio.sleep(IN_FLIGHT)
                gate.release()
                await request
            else:
                # The bot has read the member and is held before its write while the other
                # process's web app writes: the bot's compare-and-set then really loses.
                gate = faults.hold(Point.MEMBERS_WRITE, when=_exit_write(user, gateway_op))
                member_exits(user, gateway_op)
                await asyncio.wait_for(gate.reached.wait(), 10)
                await web_app(user, api_op)
                gate.release()

        async def exit_first(user: int, api_op: str, gateway_op: str) -> None:
            if api_in_process:
                # The bot holds the member's turn at its write; the web app queues behind.
                gate = faults.hold(Point.MEMBERS_WRITE, when=_exit_write(user, gateway_op))
                member_exits(user, gateway_op)
                await asyncio.wait_for(gate.reached.wait(), 10)
                request = asyncio.create_task(web_app(user, api_op))
                await asyncio.sleep(IN_FLIGHT)
                gate.release()
                await request
            else:
                # The web app's process has no seam: the exit is written, then it asks.
                member_exits(user, gateway_op)
                await world.wait_state(user, FINAL[gateway_op])
                await web_app(user, api_op)

        async def free_race(user: int, api_op: str, gateway_op: str, delay: float) -> None:
            async def member() -> None:
                await asyncio.sleep(delay)  # spread over the time the requests are in flight
                member_exits(user, gateway_op)
            await asyncio.gather(web_app(user, api_op), member())

        rng = random.Random(7)
        tasks = []
        for user, plan, (api_op, gateway_op, _) in zip(users, PLANS, PAIRS, strict=True):
            if plan == WEB_APP_FIRST:
                tasks.append(web_app_first(user, api_op, gateway_op))
            elif plan == EXIT_FIRST:
                tasks.append(exit_first(user, api_op, gateway_op))
            else:
                tasks.append(free_race(user, api_op, gateway_op, rng.uniform(0, spread)))
        await asyncio.gather(*tasks)
    outcomes: Counter[tuple[str, str]] = Counter()
    for user, plan, (api_op, gateway_op, _) in zip(users, PLANS, PAIRS, strict=True):
        await world.wait_state(user, FINAL[gateway_op])
        status, body = answers[user]
        history = await world.container.transitions.history(world.guild.id, user, 20)
        ops = [h.operation.value for h in reversed(history)]
        if status == 200:
            # both accepted: the only serial order is the web app's write, then the exit
            assert ops[-2:] == [api_op, gateway_op], ops
            assert body["applied"] and body["member"]["state"] != FINAL[gateway_op]
            outcomes[(plan, BOTH_APPLIED)] += 1
        else:
            assert ops[-1] == gateway_op and api_op not in ops[-1:], ops
            if status == 422:
                assert body["current_state"] == FINAL[gateway_op]
                outcomes[(plan, REFUSED)] += 1
            else:
                assert status == 503, body
                async with world.container.db.autocommit() as conn:
                    found = (await conn.execute(text(
                        "SELECT operation FROM dead_letters WHERE id = :id"),
                        {"id": int(body["dead_letter_id"])})).scalar()
                assert found == api_op
                outcomes[(plan, DEAD_LETTERED)] += 1
    await check_invariants(world.container.db)
    return outcomes


def _check(outcomes: Counter[tuple[str, str]], *, api_in_process: bool) -> None:
    planned = Counter(PLANS)
    assert sum(outcomes.values()) == len(PAIRS)
    # Each held member ended the one way its order allows: both outcomes happened.
    assert outcomes[(WEB_APP_FIRST, BOTH_APPLIED)] == planned[WEB_APP_FIRST], outcomes
    assert outcomes[(EXIT_FIRST, REFUSED)] == planned[EXIT_FIRST], outcomes
    allowed = {BOTH_APPLIED, REFUSED}
    assert {outcome for plan, outcome in outcomes if plan == FREE} <= allowed, outcomes


@pytest.fixture
async def race_world(clean_db: Database) -> AsyncIterator[World]:
    async with Sandbox(SandboxConfig()) as sandbox:
        world, runner = await start_world(sandbox, clean_db, api_token=API_TOKEN)
        try:
            yield world
        finally:
            await runner.__aexit__(None, None, None)


async def test_bot_and_api_in_one_process_converge(race_world: World) -> None:
    api = ApiServer(race_world.container, host="127.0.0.1", port=0)
    await api.start()
    try:
        outcomes = await _race(race_world, api.url, spread=0.08, api_in_process=True)
    finally:
        await api.stop()
    _check(outcomes, api_in_process=True)
    # One process: the bot and the web app take turns on a member, never conflict.
    metrics = race_world.container.metrics
    assert isinstance(metrics, CountingMetrics)
    assert sum(metrics.conflicts.values()) == 0
    print(f"\nbot vs API (in process), {len(PAIRS)} members: {dict(outcomes)}")


async def test_bot_and_api_in_separate_processes_converge(race_world: World,
                                                          migrated: str) -> None:
    proc, base_url = await start_api("api-race", migrated)
    try:
        outcomes = await _race(race_world, base_url, spread=0.5, api_in_process=False)
    finally:
        assert await proc.terminate() == 0
    _check(outcomes, api_in_process=False)
    # The bot's exits held while the web app wrote lost their compare-and-set, re-read
    # and applied: the race went through the CAS, not around it.
    metrics = race_world.container.metrics
    assert isinstance(metrics, CountingMetrics)
    assert metrics.conflicts["leave"] + metrics.conflicts["ban"] \
        >= Counter(PLANS)[WEB_APP_FIRST]
    print(f"\nbot vs API (separate process), {len(PAIRS)} members: {dict(outcomes)}")
