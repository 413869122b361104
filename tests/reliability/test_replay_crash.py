"""A replaying process SIGKILLed mid-way through `dlq retry-group`: the entries it had
claimed are left `retrying`; once DEAD_LETTER_CLAIM_SECONDS passed, a delivery worker (every
bot process runs one) makes them open again, and a retry resolves them."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from sqlalchemy import text

from domain.lifecycle import Operation, State
from domain.metrics import CountingMetrics
from domain.outbox import OutboxWorker, WorkerPolicy
from domain.persistence.database import Database
from domain.persistence.outbox import OutboxStore
from tests.api.support import dead_letter
from tests.helpers import GUILD, STAFF, count, drive, next_user
from tests.integration.test_outbox import RecordingDiscord
from tests.wiring import ProcessServices

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = 40


async def test_entries_a_killed_replayer_left_retrying_are_open_again(
        services: ProcessServices, clean_db: Database, migrated: str, tmp_path: Path) -> None:
    users = [next_user() for _ in range(ENTRIES)]
    for user in users:
        await drive(services, user, State.JOINED)
        await dead_letter(services, user, Operation.START_ONBOARDING)
    async with clean_db.autocommit() as conn:
        signature = (await conn.execute(text(
            "SELECT DISTINCT signature FROM dead_letters"))).scalar_one()
    # One member's row is locked: its replay waits there, with the replayer's claims held.
    async with clean_db.transaction() as lock:
        await lock.execute(text("SELECT 1 FROM members WHERE guild_id = :g AND user_id = :u "
                                "FOR UPDATE"), {"g": GUILD, "u": users[0]})
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": migrated,
               "DATA_DIR": str(tmp_path)}
        replayer = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "dlq", "retry-group", signature, "--guild",
            str(GUILD), "--actor", str(STAFF), cwd=ROOT, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while await count(clean_db, "pg_stat_activity",
                          "wait_event_type = 'Lock' AND datname = current_database()") == 0:
            assert time.monotonic() < deadline, "the replay never reached the locked member"
            await asyncio.sleep(0.02)
        replayer.send_signal(signal.SIGKILL)
        await replayer.wait()
        await lock.rollback()
    stuck = await count(clean_db, "dead_letters", "status = 'retrying'")
    assert stuck > 0  # the crash left claims behind
    # What the killed replayer finished, and what it had not claimed yet (still open).
    done_before = await count(clean_db, "dead_letters", "status = 'resolved'")

    worker = OutboxWorker(OutboxStore(clean_db), RecordingDiscord(), CountingMetrics(),
                          WorkerPolicy(dead_letter_claim_seconds=2.0),
                          dead_letters=services.stores.dead_letter_writes)
    await worker.run_once()
    assert await count(clean_db, "dead_letters", "status = 'retrying'") == stuck  # not yet
    await asyncio.sleep(2.1)
    await worker.run_once()
    assert await count(clean_db, "dead_letters", "status = 'retrying'") == 0
    reopened = await services.remediation.retry_group(GUILD, signature, STAFF)
    assert reopened.resolved == ENTRIES - done_before  # the reopened ones among them
    assert await count(clean_db, "dead_letters", "status = 'resolved'") == ENTRIES
