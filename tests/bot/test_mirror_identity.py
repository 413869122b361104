"""Message nonces stay unique when the database behind a running bot is replaced.

Discord de-duplicates `enforce_nonce` messages by author and nonce for several minutes, and
outbox ids start again in a new database: a nonce of the row id alone would be answered
with the old database's message, and the new line would never appear.
"""

from __future__ import annotations

import contextlib

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from domain.persistence.database import Database
from domain.persistence.migrate import upgrade
from sandbox import Sandbox, SandboxConfig
from tests.bot.support import enqueue_records, record_numbers
from tests.bot.world import setup_guild, start_world


async def _identity(db: Database) -> str:
    async with db.autocommit() as conn:
        return str((await conn.execute(text("SELECT identity FROM installation"))).scalar_one())


async def _record_ids(db: Database) -> list[int]:
    async with db.autocommit() as conn:
        return list((await conn.execute(text(
            "SELECT id FROM outbox WHERE payload->>'record' = 'remediation' ORDER BY id"
        ))).scalars())


async def test_a_new_database_behind_the_same_bot_session_posts_every_new_line(
        empty_database: str) -> None:
    await upgrade(empty_database)
    db = Database(empty_database, pool_size=5, max_overflow=5)
    try:
        async with Sandbox(SandboxConfig()) as sandbox:
            world, runner = await start_world(sandbox, db)
            try:
                await setup_guild(world)
                await enqueue_records(db, world.guild.id, range(3))
                await sandbox.wait_until(lambda: len(record_numbers(
                    sandbox, world.log_channel)) >= 3, timeout=20, what="the first 3 lines")
                before = await _identity(db)
                old_ids = await _record_ids(db)
                # A new cluster, as far as the running bot can tell: every table (and the
                # ids) starts again, and every connection it had is gone.
                async with db.autocommit() as conn:
                    await conn.execute(text("DROP SCHEMA public CASCADE"))
                    await conn.execute(text("CREATE SCHEMA public"))
                await upgrade(empty_database)
                with contextlib.suppress(DBAPIError):  # this connection goes too
                    async with db.autocommit() as conn:
                        await conn.execute(text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() "
                            "ORDER BY pid = pg_backend_pid()"))
                assert await _identity(db) != before
                await setup_guild(world)
                await enqueue_records(db, world.guild.id, range(100, 103))
                # What this guards against: the new rows took the old rows' ids.
                assert await _record_ids(db) == old_ids
                await sandbox.wait_until(lambda: len(record_numbers(
                    sandbox, world.log_channel)) >= 6, timeout=20, what="3 new lines")
                assert record_numbers(sandbox, world.log_channel) == [0, 1, 2, 100, 101, 102]
                assert sandbox.duplicates_prevented == []
            finally:
                await runner.__aexit__(None, None, None)
    finally:
        await db.dispose()
