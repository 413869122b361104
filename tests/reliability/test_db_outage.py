"""PostgreSQL stops for 30 s while members join and leave, and 300 more join and onboard
(1,200 events): nothing is lost, nothing applied twice, the bot stays connected, /dlq says
the database is unavailable."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from bot.api.server import ApiServer
from domain.ingest.pipeline import Ingestion
from domain.persistence.database import Database
from sandbox import Sandbox, SandboxConfig
from tests.bot.world import eventually, setup_guild, start_world
from tests.helpers import check_invariants
from tests.reliability.support import StoppablePostgres

OUTAGE_SECONDS = 30
RAID = 300
STARTED, COMPLETED = 8, 2
TOKEN = "outage-test-token-0123456789"


async def test_database_outage_keeps_events_logged_and_applies_them_in_order(
        stoppable_pg: StoppablePostgres, tmp_path: Path) -> None:
    db = Database(stoppable_pg.url, pool_size=5, max_overflow=5)
    async with Sandbox(SandboxConfig()) as sandbox:
        world, runner = await start_world(sandbox, db, data_dir=tmp_path, api_token=TOKEN)
        api = ApiServer(world.container, host="127.0.0.1", port=0,
                        gateway_status=lambda: world.bot.gateway_connected)
        await api.start()
        try:
            await setup_guild(world)
            before = [sandbox.member_join(world.guild, None, f"early{i}").user.id
                      for i in range(10)]
            for user in before:
                await world.wait_state(user, "joined")

            await stoppable_pg.stop()
            outage_started = time.monotonic()
            during = [sandbox.member_join(world.guild, None, f"during{i}").user.id
                      for i in range(20)]
            for user in before[:5]:
                sandbox.member_leave(world.guild, user)
            for user in during[:3]:  # joined and left again during the outage
                sandbox.member_leave(world.guild, user)
            # A raid-sized burst meanwhile: 300 members onboard (1,200 events).
            raid = [sandbox.member_join(world.guild, None, f"raid{i}").user.id
                    for i in range(RAID)]
            for user in raid:
                sandbox.member_update(world.guild, user, flags=STARTED)
                sandbox.member_update(world.guild, user, flags=STARTED | COMPLETED)
                sandbox.member_update(world.guild, user, pending=False)
            ingestion = world.container.ingestion
            assert ingestion is not None
            # Updates of one member waiting together collapse: at least its join and one.
            await eventually(lambda: _waiting(ingestion, 28 + 2 * RAID),
                             what="the events logged, waiting")
            answer = await world.ask(world.staff, "dlq stats")
            assert "database is unavailable" in answer
            assert sandbox.connected_sessions, "the bot stays connected to Discord"
            async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
                health = await client.get("/healthz")
                assert health.status_code == 503 and "database" in health.text
                assert health.json()["ingest"]["backlog"] >= 28 + 2 * RAID
                write = await client.post(
                    f"/api/v1/guilds/{world.guild.id}/members/{before[9]}/transitions",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    json={"operation": "start_onboarding", "idempotency_key": "outage-1"})
                assert write.status_code == 503
                assert write.json()["error"] == "database_unavailable"
            remaining = OUTAGE_SECONDS - (time.monotonic() - outage_started)
            await asyncio.sleep(max(remaining, 0))  # the outage itself lasts 30 s
            assert world.bot.gateway_connected
            await stoppable_pg.start()

            await eventually(lambda: _waiting(ingestion, 0), timeout=60,
                             what="the logged events applied")
            for user in before[:5] + during[:3]:
                await world.wait_state(user, "left_guild")
            for user in before[5:] + during[3:]:
                await world.wait_state(user, "joined")
            for user in raid:
                await world.wait_state(user, "rules_accepted")
            for user in during[:3]:
                history = await world.container.transitions.history(world.guild.id, user)
                assert [h.operation.value for h in reversed(history)] == ["join", "leave"]
            await check_invariants(db)
            assert await world.count("dead_letters") == 0
            # (the owner and the staff member are caught up at start: not counted here)
            assert await world.count("member_transitions", "user_id = ANY(:u)",
                                     u=before + during) == 10 + 5 + 20 + 3
            answer = await world.ask(world.staff, "dlq stats")
            assert "open **0**" in answer
            async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
                assert (await client.get("/healthz")).status_code == 200
        finally:
            await api.stop()
            await runner.__aexit__(None, None, None)
            await db.dispose()


async def _waiting(ingestion: Ingestion, count: int) -> bool:
    backlog = ingestion.status().backlog
    return backlog >= count if count else backlog == 0
