"""The fixture of a PostgreSQL of its own that a test may stop and start (the session one
stays up)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.embedded_pg import start_embedded
from domain.persistence.migrate import upgrade
from tests.reliability.support import StoppablePostgres


@pytest.fixture
async def stoppable_pg() -> AsyncIterator[StoppablePostgres]:
    if os.environ.get("TEST_DATABASE_URL"):
        pytest.fail("the outage test needs a database it may stop: unset TEST_DATABASE_URL "
                    "for tests/reliability, or run them on the embedded default")
    tmp = Path(tempfile.mkdtemp(prefix="llo-", dir="/tmp"))
    server = await asyncio.to_thread(start_embedded, tmp / "pg", delete_on_exit=True)
    await upgrade(server.url)
    pg = StoppablePostgres(server, server.url)
    try:
        yield pg
    finally:
        try:
            await asyncio.to_thread(server.stop)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

