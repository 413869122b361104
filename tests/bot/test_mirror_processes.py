"""The mirror with the real `python -m bot run` process: a SIGKILL mid-burst, and two bot
processes on one database. Every record must reach the log channel exactly once."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from domain.persistence.database import Database
from domain.persistence.outbox import OutboxStore
from sandbox import Guild, Sandbox, SandboxConfig
from tests.bot.support import (
    BotProcess,
    channel_messages,
    duplicates,
    enqueue_records,
    record_facts,
    record_numbers,
    settled,
)
from tests.bot.world import World, eventually
from tests.wiring import ProcessServices


async def _log_guild(sandbox: Sandbox, db: Database, name: str) -> tuple[Guild, int]:
    guild = sandbox.create_guild(name, channels=("general", "mod-log"))
    channel = sandbox.channel("mod-log", guild).id
    await ProcessServices(db).guilds.setup(guild.id, log_channel_id=channel, staff_role_ids=[],
                                         verified_role_id=None, eligibility_role_id=None,
                                         mirror_level="dead_letters")
    return guild, channel


async def _workers(db: Database) -> dict[str, int]:
    async with db.autocommit() as conn:
        rows = await conn.execute(text(
            "SELECT worker, count(*) AS n FROM outbox_attempts WHERE http_status = 200 "
            "GROUP BY worker"))
        return {r.worker: int(r.n) for r in rows}


async def test_sigkill_mid_burst_then_restart_delivers_every_record_once(
        migrated: str, clean_db: Database, tmp_path: Path) -> None:
    async with Sandbox(SandboxConfig()) as sandbox:
        guild, channel = await _log_guild(sandbox, clean_db, "Crash Test")
        # 400-character lines, 14 a message: 15 messages, so the burst outlasts the first
        # rate-limit window and the kill lands mid-burst.
        await enqueue_records(clean_db, guild.id, range(200), width=400)
        start = time.monotonic()
        # A short lock so the restarted process takes the dead one's claims over quickly.
        env = {"OUTBOX_LOCK_SECONDS": "3"}
        first = BotProcess(sandbox, migrated, tmp_path / "first.log", env)
        await first.start()
        try:
            await sandbox.wait_until(lambda: len(channel_messages(sandbox, channel)) >= 3,
                                     timeout=30, what="three messages")
            # The next post hangs in "Discord": the process dies while it is in flight, and
            # Discord answers it anyway (a new message, or the earlier one for its nonce).
            # The dead process never records the delivery.
            fault = sandbox.inject_fault("POST", f"/channels/{channel}/messages", "hang",
                                         hang_seconds=1.0)
            await sandbox.wait_until(lambda: fault.hits >= 1, timeout=30, what="a hung post")
            await first.kill()
        finally:
            await first.kill()
        async with clean_db.autocommit() as conn:
            in_flight = (await conn.execute(text(
                "SELECT count(*) FROM outbox WHERE status = 'delivering'"))).scalar_one()
        assert in_flight > 0  # claimed by the dead process, never recorded
        hung = await sandbox.wait_until(
            lambda: next((c for c in sandbox.calls if c.fault == "hang"), None),
            what="the in-flight post to be answered")
        assert hung.status == 200

        second = BotProcess(sandbox, migrated, tmp_path / "second.log", env)
        await second.start()
        try:
            await sandbox.wait_until(lambda: len(record_numbers(sandbox, channel)) >= 200,
                                     timeout=60, what="all 200 records")
            counts = await eventually(lambda: settled(clean_db, 200), timeout=30,
                                      what="every row delivered")
        finally:
            code = await second.stop()
        elapsed = time.monotonic() - start
        numbers = record_numbers(sandbox, channel)
        posts = sandbox.calls_to("POST", "/channels/{channel_id}/messages")
        print(f"\nSIGKILL burst: 200 records, {len(channel_messages(sandbox, channel))} "
              f"messages, {len(posts)} POSTs ({sum(c.status == 429 for c in posts)} answered "
              f"429), {len(sandbox.duplicates_prevented)} duplicates prevented by nonce, "
              f"{elapsed:.1f}s including two process starts; workers {await _workers(clean_db)}")
        assert numbers == list(range(200)) and duplicates(numbers) == {}
        assert counts == {"delivered": 200}
        # The resend of the batch that died in flight carried the same nonce.
        assert len(sandbox.duplicates_prevented) >= 1
        assert code == 0, second.logs()


async def test_two_bot_processes_on_one_database_deliver_each_record_once(
        world: World, migrated: str, tmp_path: Path) -> None:
    """The in-process bot and a `python -m bot run` process share the database and sandbox."""
    db = world.container.db
    other = BotProcess(world.sandbox, migrated, tmp_path / "other.log",
                       {"OUTBOX_POLL_SECONDS": "0.02"})
    await other.start()
    try:
        # More lanes (log channels) than one worker claims at once (8): both get work.
        guilds = [await _log_guild(world.sandbox, db, f"Guild {i}") for i in range(12)]
        # All 12 lanes appear in one commit: one claim takes at most 8 of them, so the
        # other process finds the rest waiting.
        await OutboxStore(db).enqueue_mirror(
            (guild.id, record_facts(n, 100)) for guild, _ in guilds for n in range(20))
        counts = await eventually(lambda: settled(db, 240), timeout=60, what="240 rows")
        for _, channel in guilds:
            await world.sandbox.wait_until(lambda c=channel: len(record_numbers(  # type: ignore[misc]
                world.sandbox, c)) >= 20, what="20 records in a channel")
    finally:
        code = await other.stop()
    workers = await _workers(db)
    print(f"\ntwo processes: 240 records over 12 channels, rows per worker {workers}, "
          f"{len(world.sandbox.duplicates_prevented)} nonce hits")
    assert counts == {"delivered": 240}
    for _, channel in guilds:
        assert record_numbers(world.sandbox, channel) == list(range(20))
    assert sum(workers.values()) == 240 and len(workers) == 2
    assert code == 0, other.logs()
