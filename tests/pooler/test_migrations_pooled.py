"""Processes that start at once behind PgBouncer (transaction mode) migrate once: the
upgrade's transaction-scoped advisory lock holds there, where a session lock would not."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.helpers import upgrades_started_while_the_lock_is_held
from tests.pgbouncer import PgBouncer

ROOT = Path(__file__).resolve().parents[2]


async def test_upgrades_through_the_pooler_wait_for_each_other_and_all_succeed(
        empty_database: str, bouncer: PgBouncer) -> None:
    pooled = bouncer.url_for(str(make_url(empty_database).database))
    outcome = await upgrades_started_while_the_lock_is_held(empty_database, pooled)
    assert outcome.version == "0007"
    assert outcome.tables == 16
    # No advisory lock is left behind on a pooled server connection.
    assert outcome.advisory_locks_left == 0


STARTS = """
import asyncio, sys
from domain.persistence.migrate import upgrade
async def main() -> None:
    await asyncio.gather(*(upgrade(sys.argv[1], statement_cache_size=0) for _ in range(10)))
asyncio.run(main())
"""


async def test_processes_starting_at_once_through_the_pooler_share_its_connections(
        migrated: str, bouncer: PgBouncer) -> None:
    """Three processes each start ten upgrades at once (at head: alembic still reads its
    version), more clients than PgBouncer's 8 server connections, with
    DB_STATEMENT_CACHE_SIZE=0 as the README says. The migration's engine did not take the
    setting: asyncpg numbers its cached statements per process, so two processes sharing a
    server connection both created `__asyncpg_stmt_1__` ("prepared statement ... already
    exists": a bot that did not start, found by the raid benchmark through PgBouncer)."""
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-c", STARTS, migrated, cwd=ROOT, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)}) for _ in range(3)]
    results = [await proc.communicate() for proc in procs]
    errors = [err.decode()[-500:] for (_, err), proc in zip(results, procs, strict=True)
              if proc.returncode != 0]
    assert errors == []
