"""Processes that start at once behind PgBouncer (transaction mode) migrate once: the
upgrade's transaction-scoped advisory lock holds there, where a session lock would not."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from domain.persistence.migrate import MIGRATION_LOCK_KEY, upgrade
from tests.pgbouncer import PgBouncer
from tests.wiring import admin_sql


@pytest.fixture
async def empty_database(pg_url: str) -> AsyncIterator[str]:
    """A new database; its URL on the server itself."""
    name = f"ll_pooled_{uuid.uuid4().hex[:10]}"
    await admin_sql(pg_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin_sql(pg_url, f'DROP DATABASE "{name}" WITH (FORCE)')


async def test_upgrades_through_the_pooler_wait_for_each_other_and_all_succeed(
        empty_database: str, bouncer: PgBouncer) -> None:
    pooled = bouncer.url_for(str(make_url(empty_database).database))
    # The lock's holder and the probe talk to the server directly: a session lock taken
    # through the pooler would stay on whichever server connection ran it.
    engine = create_async_engine(empty_database, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as holder, engine.connect() as probe:
            await holder.execute(text("SELECT pg_advisory_lock(:k)"),
                                 {"k": MIGRATION_LOCK_KEY})
            upgrades = [asyncio.create_task(upgrade(pooled)) for _ in range(4)]
            deadline = time.monotonic() + 20
            while True:
                waiting = (await probe.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"))).scalar_one()
                if waiting == 4:
                    break
                assert time.monotonic() < deadline, f"{waiting} upgrades waiting, not 4"
                await asyncio.sleep(0.02)
            await holder.execute(text("SELECT pg_advisory_unlock(:k)"),
                                 {"k": MIGRATION_LOCK_KEY})
            await asyncio.wait_for(asyncio.gather(*upgrades), timeout=60)
            version = (await probe.execute(text(
                "SELECT version_num FROM alembic_version"))).scalar_one()
            # No advisory lock is left behind on a pooled server connection.
            left = (await probe.execute(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"))).scalar_one()
    finally:
        await engine.dispose()
    assert version == "0002"
    assert left == 0
