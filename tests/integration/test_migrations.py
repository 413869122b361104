"""Processes that start at once migrate once: the upgrade holds a transaction-scoped
advisory lock, so it also holds behind a transaction-mode pooler."""

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
from tests.wiring import admin_sql


@pytest.fixture
async def empty_database(pg_url: str) -> AsyncIterator[str]:
    name = f"ll_concurrent_{uuid.uuid4().hex[:10]}"
    await admin_sql(pg_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin_sql(pg_url, f'DROP DATABASE "{name}" WITH (FORCE)')


async def test_upgrades_started_at_once_wait_for_each_other_and_all_succeed(
        empty_database: str) -> None:
    engine = create_async_engine(empty_database, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as holder, engine.connect() as probe:
            # Another process is mid-upgrade: it holds the lock while four more start.
            await holder.execute(text("SELECT pg_advisory_lock(:k)"),
                                 {"k": MIGRATION_LOCK_KEY})
            upgrades = [asyncio.create_task(upgrade(empty_database)) for _ in range(4)]
            deadline = time.monotonic() + 20
            while True:  # all four are waiting for the lock: a real contest
                waiting = (await probe.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"))).scalar_one()
                if waiting == 4:
                    break
                assert time.monotonic() < deadline, f"{waiting} upgrades waiting, not 4"
                await asyncio.sleep(0.02)
            assert not any(task.done() for task in upgrades)
            await holder.execute(text("SELECT pg_advisory_unlock(:k)"),
                                 {"k": MIGRATION_LOCK_KEY})
            await asyncio.wait_for(asyncio.gather(*upgrades), timeout=60)
            version = (await probe.execute(text(
                "SELECT version_num FROM alembic_version"))).scalar_one()
            tables = (await probe.execute(text(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"))).scalar_one()
    finally:
        await engine.dispose()
    assert version == "0002"
    assert tables == 9  # the 8 tables of the schema and alembic_version, each once
