"""The heart of the product: the bot and the web app write the same members at once.

50 members: the web app (HTTP API) verifies or requests verification while the bot handles
the member's leave or ban from the gateway, at the same moment. Once with the API inside
the test's process, once with the API as its own `python -m bot api` process.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from bot.api.server import ApiServer
from domain.persistence.database import Database
from sandbox import Sandbox, SandboxConfig
from tests.bot.conftest import World, start_world
from tests.helpers import check_invariants, path_to
from tests.scale.procs import API_TOKEN, start_api

# (what the web app does, what the member does in Discord, the state both start from)
PAIRS = [("verify", "leave", "verification_pending")] * 20 + \
        [("verify", "ban", "verification_pending")] * 15 + \
        [("request_verification", "leave", "rules_accepted")] * 15
FINAL = {"leave": "left_guild", "ban": "banned"}


async def _prepare(world: World, start_state: str) -> int:
    user = world.sandbox.member_join(world.guild, None, f"racer-{uuid.uuid4().hex[:6]}").user.id
    await world.wait_state(user, "joined")
    from domain.commands import TransitionCommand
    from domain.lifecycle import Source, State

    for op in path_to(State(start_state))[1:]:  # the join came from the gateway
        await world.container.transitions.apply(TransitionCommand(
            guild_id=world.guild.id, user_id=user, operation=op, source=Source.API,
            idempotency_key=uuid.uuid4().hex))
    return user


async def _race(world: World, base_url: str, spread: float) -> Counter[str]:
    users = [await _prepare(world, start) for _, _, start in PAIRS]
    outcomes: Counter[str] = Counter()
    answers: dict[int, tuple[int, dict[str, Any]]] = {}
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {API_TOKEN}"},
                                 timeout=30) as client:

        async def web_app(user: int, operation: str) -> None:
            resp = await client.post(
                f"{base_url}/api/v1/guilds/{world.guild.id}/members/{user}/transitions",
                json={"operation": operation, "idempotency_key": f"race-{user}"})
            answers[user] = (resp.status_code, resp.json())

        async def member(user: int, gateway_op: str, delay: float) -> None:
            await asyncio.sleep(delay)  # spread over the time the HTTP requests are in flight
            if gateway_op == "leave":
                world.sandbox.member_leave(world.guild, user)
            else:
                world.sandbox.ban(world.guild, user)

        rng = random.Random(7)
        tasks = []
        for user, (api_op, gateway_op, _) in zip(users, PAIRS, strict=True):
            tasks.append(asyncio.create_task(web_app(user, api_op)))
            tasks.append(asyncio.create_task(member(user, gateway_op, rng.uniform(0, spread))))
        await asyncio.gather(*tasks)
    for user, (api_op, gateway_op, _) in zip(users, PAIRS, strict=True):
        await world.wait_state(user, FINAL[gateway_op])
        status, body = answers[user]
        history = await world.container.transitions.history(world.guild.id, user, 20)
        ops = [h.operation.value for h in reversed(history)]
        if status == 200:
            # both accepted: the only serial order is the web app's write, then the exit
            assert ops[-2:] == [api_op, gateway_op], ops
            outcomes["both applied (web app first)"] += 1
        else:
            assert ops[-1] == gateway_op and api_op not in ops[-1:], ops
            if status == 422:
                assert body["current_state"] == FINAL[gateway_op]
                outcomes["web app refused (exit first)"] += 1
            else:
                assert status == 503, body
                async with world.container.db.autocommit() as conn:
                    found = (await conn.execute(text(
                        "SELECT operation FROM dead_letters WHERE id = :id"),
                        {"id": int(body["dead_letter_id"])})).scalar()
                assert found == api_op
                outcomes["web app dead-lettered (lost the race)"] += 1
    await check_invariants(world.container.db)
    return outcomes


@pytest.fixture
async def race_world(clean_db: Database):  # type: ignore[no-untyped-def]
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
        outcomes = await _race(race_world, api.url, spread=0.08)
    finally:
        await api.stop()
    assert sum(outcomes.values()) == len(PAIRS)
    print(f"\nbot vs API (in process), {len(PAIRS)} members: {dict(outcomes)}")


async def test_bot_and_api_in_separate_processes_converge(race_world: World,
                                                          migrated: str) -> None:
    proc, base_url = await start_api("api-race", migrated)
    try:
        outcomes = await _race(race_world, base_url, spread=0.5)
    finally:
        assert await proc.terminate() == 0
    assert sum(outcomes.values()) == len(PAIRS)
    print(f"\nbot vs API (separate process), {len(PAIRS)} members: {dict(outcomes)}")
