"""Real PostgreSQL for every test: a throwaway embedded cluster, or TEST_DATABASE_URL.

With TEST_DATABASE_URL set, a uniquely named database is created on that server for the
session and dropped at the end; nothing is started.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.embedded_pg import start_embedded
from domain.persistence.database import Database, asyncpg_url
from domain.persistence.migrate import upgrade
from sandbox import Sandbox, SandboxConfig
from tests.bot.world import World, start_world
from tests.wiring import TABLES, ProcessServices, admin_sql


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        base = asyncpg_url(external)
        name = f"lifeline_test_{uuid.uuid4().hex[:10]}"
        asyncio.run(admin_sql(base, f'CREATE DATABASE "{name}"'))
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
        asyncio.run(admin_sql(base, f'DROP DATABASE "{name}" WITH (FORCE)'))
        return
    tmp = Path(tempfile.mkdtemp(prefix="ll-", dir="/tmp"))
    server = start_embedded(tmp / "pg", delete_on_exit=True)
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
async def migrated(pg_url: str) -> str:
    await upgrade(pg_url)
    return pg_url


@pytest.fixture(scope="session")
async def db(migrated: str) -> AsyncIterator[Database]:
    database = Database(migrated, pool_size=25, max_overflow=10)
    yield database
    await database.dispose()


@pytest.fixture
async def clean_db(db: Database) -> Database:
    async with db.transaction() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    return db


@pytest.fixture
def services(clean_db: Database) -> ProcessServices:
    return ProcessServices(clean_db)


@pytest.fixture
async def world(clean_db: Database) -> AsyncIterator[World]:
    """The real bot (discord.py) in-process against the sandbox, on the test database."""
    async with Sandbox(SandboxConfig()) as sandbox:
        w, runner = await start_world(sandbox, clean_db)
        try:
            yield w
        finally:
            await runner.__aexit__(None, None, None)


@pytest.fixture
async def empty_database(pg_url: str) -> AsyncIterator[str]:
    """A new, empty database on the test server (its URL there), dropped afterwards: for
    tests of the migrations themselves."""
    name = f"ll_empty_{uuid.uuid4().hex[:10]}"
    await admin_sql(pg_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin_sql(pg_url, f'DROP DATABASE "{name}" WITH (FORCE)')
