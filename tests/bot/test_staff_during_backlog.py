"""Staff never wait behind members: with every connection of the main pool taken by gateway
writes that cannot finish (held at the fault seam), staff commands still answer at once,
from their own pool, and the held writes all land once released."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from domain.persistence.database import Database
from domain.persistence.faults import Point
from sandbox import Sandbox, SandboxConfig
from tests.bot.world import World, setup_guild, start_world
from tests.helpers import count

DEFERRED_CHANNEL_MESSAGE = 5
HELD_JOINS = 6  # three times the main pool: some writes hold a connection, the rest wait


@pytest.fixture
async def backlogged(clean_db: Database, migrated: str) -> AsyncIterator[World]:
    main = Database(migrated, pool_size=2, max_overflow=0)
    interactive = Database(migrated, pool_size=2, max_overflow=0)
    try:
        async with Sandbox(SandboxConfig()) as sandbox:
            world, runner = await start_world(sandbox, main, interactive=interactive)
            try:
                yield world
            finally:
                await runner.__aexit__(None, None, None)
    finally:
        await main.dispose()
        await interactive.dispose()


async def test_staff_commands_answer_while_gateway_writes_hold_every_connection(
        backlogged: World, clean_db: Database) -> None:
    world = backlogged
    await setup_guild(world)
    for user in (world.staff, world.owner):  # the start-up reconcile is done
        await world.wait_state(user, "joined")
    faults = world.container.services.stores.faults
    assert faults is not None
    gate = faults.hold(Point.MEMBERS_WRITE, times=None,
                       when=lambda hit: hit.operation == "join")
    joiners = [world.sandbox.member_join(world.guild, None, f"raider{i}").user.id
               for i in range(HELD_JOINS)]
    try:
        # The backlog: both main-pool connections sit in held writes, the other joins wait
        # for a connection.
        deadline = time.monotonic() + 10
        while len(gate.hits) < 2:
            assert time.monotonic() < deadline, "the joins never reached the write"
            await asyncio.sleep(0.01)
        pool = world.container.db.engine.pool
        assert pool.checkedout() == 2  # type: ignore[attr-defined]

        for name, options in (("dlq stats", {}), ("member show", {"user": world.staff}),
                              ("dlq list", {})):
            started = time.monotonic()
            handle = world.sandbox.slash_command(world.guild, world.staff, name, options)
            first = await handle.wait_reply(timeout=3)
            acknowledged = time.monotonic() - started
            message = await handle.wait_message(timeout=5)
            answered = time.monotonic() - started
            assert first.type == DEFERRED_CHANNEL_MESSAGE, name
            assert acknowledged < 1.0, f"/{name} acknowledged after {acknowledged:.2f} s"
            assert answered < 3.0, f"/{name} answered after {answered:.2f} s"
            assert message.ephemeral and "❌" not in message.text, (name, message.text)
        # The backlog was really there all along: none of the joins is written yet.
        assert await count(clean_db, "members", "user_id = ANY(:u)", u=joiners) == 0
        assert len(gate.hits) == 2
    finally:
        gate.release()
    for user in joiners:
        await world.wait_state(user, "joined", timeout=30)
    assert await count(clean_db, "dead_letters") == 0
