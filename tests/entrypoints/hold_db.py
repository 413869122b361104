"""Starts the embedded PostgreSQL the way long-running commands do, prints READY, waits.

Used to prove SIGTERM stops the database and a run after SIGKILL recovers.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from bot.__main__ import sigterm_to_exit
from bot.container import open_container
from bot.settings import load_settings


async def main() -> None:
    async with open_container(load_settings()) as container:
        async with container.db.autocommit() as conn:
            from sqlalchemy import text

            await conn.execute(text("SELECT 1"))
        print("READY", container.embedded.pgdata if container.embedded else "-", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, sigterm_to_exit)
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
