"""The ingest log as the bot runs it: a full log is loud and repaired, never silent."""

from __future__ import annotations

import json
from pathlib import Path

from domain.lifecycle import Operation
from domain.persistence.faults import Point
from sandbox import Sandbox, SandboxConfig
from tests.bot.world import setup_guild, start_world
from tests.helpers import check_invariants, cmd

JOINS = 80


async def test_events_past_a_full_log_are_counted_and_their_guild_reconciled(
        clean_db) -> None:  # type: ignore[no-untyped-def]
    """The workers wait on the database while 80 members join; the log (4 KiB) takes
    about 35 of the events and refuses the rest: they are counted, /lifeline status says
    so, and once the log has room again the guild is reconciled in full: every member ends
    joined, as Discord shows them."""
    async with Sandbox(SandboxConfig()) as sandbox:
        world, runner = await start_world(sandbox, clean_db, spool_max_bytes=4096)
        try:
            await setup_guild(world)
            ingestion = world.container.ingestion
            faults = world.container.services.stores.faults
            assert ingestion is not None and faults is not None
            gate = faults.hold(Point.MEMBERS_READ, times=None)
            users = [sandbox.member_join(world.guild, None, f"raider{i}").user.id
                     for i in range(JOINS)]
            await sandbox.wait_until(
                lambda: ingestion.log.appended + ingestion.dropped >= JOINS,
                what="every join logged or refused")
            status = ingestion.status()
            assert 0 < status.dropped < JOINS and status.guilds_to_reconcile == 1
            answer = await world.ask(world.staff, "lifeline status")
            assert f"{status.dropped} gateway events were dropped" in answer
            gate.release()
            faults.clear()
            for user in users:
                await world.wait_state(user, "joined", timeout=20)
            assert ingestion.status().guilds_to_reconcile == 0
            assert await world.count("dead_letters") == 0
            await check_invariants(clean_db)
        finally:
            await runner.__aexit__(None, None, None)


async def test_the_outage_spool_of_an_earlier_version_is_moved_into_the_log(
        clean_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An upgrade with events still in DATA_DIR/spool: they are applied (past the spool's
    read offset; a torn last line was never acknowledged), and the spool is removed."""
    async with Sandbox(SandboxConfig()) as sandbox:
        guild = sandbox.create_guild("Upgrade")
        applied, waiting = (sandbox.member_join(guild, None, n).user.id
                            for n in ("applied", "waiting"))
        spool = tmp_path / "spool"
        spool.mkdir()
        lines = [json.dumps(cmd(Operation.JOIN, user, guild.id, key=f"old-{user}")
                            .to_payload()).encode() + b"\n" for user in (applied, waiting)]
        (spool / "events.jsonl").write_bytes(b"".join(lines) + b'{"guild_id": 1')
        (spool / "events.offset").write_text(str(len(lines[0])))
        world, runner = await start_world(sandbox, clean_db, data_dir=tmp_path)
        try:
            history = await world.container.transitions.history(guild.id, waiting)
            assert [h.idempotency_key for h in history] == [f"old-{waiting}"]
            history = await world.container.transitions.history(guild.id, applied)
            assert [h.idempotency_key for h in history] != [f"old-{applied}"]  # not again
            assert not spool.exists() or not any(spool.iterdir())
        finally:
            await runner.__aexit__(None, None, None)
