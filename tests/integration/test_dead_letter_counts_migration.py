"""Migration 0002 on a real PostgreSQL: upgrading from 0001 backfills dead_letter_counts
from the entries already there, the triggers count what comes after, and downgrading
removes the table, the triggers and their function."""

from __future__ import annotations

from typing import Any

from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from domain.persistence.database import Database
from domain.persistence.migrate import alembic_config, upgrade
from tests.helpers import GUILD, OTHER_GUILD, count
from tests.integration.test_dead_letter_counts import BULK_INSERT, db_drift
from tests.wiring import ProcessServices


def _downgrade(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)


async def _schema_objects(conn: AsyncConnection) -> tuple[Any, ...]:
    return tuple((await conn.execute(text(
        """SELECT to_regclass('dead_letter_counts') IS NOT NULL,
                  (SELECT count(*) FROM pg_trigger
                   WHERE tgrelid = 'dead_letters'::regclass AND NOT tgisinternal),
                  to_regprocedure('dead_letter_counts_apply()') IS NOT NULL"""))).one())


async def test_upgrade_from_0001_backfills_the_counts_and_downgrade_removes_them(
        empty_database: str) -> None:
    await upgrade(empty_database, "0001")
    db = Database(empty_database, pool_size=2, max_overflow=0)
    try:
        async with db.transaction() as conn:
            for guild, n in ((GUILD, 50), (OTHER_GUILD, 13)):
                await conn.execute(BULK_INSERT, {"g": guild, "u": 1, "sigs": 4, "n": n})
        await upgrade(empty_database, "head")
        async with db.autocommit() as conn:
            assert await _schema_objects(conn) == (True, 4, True)
            backfilled = (await conn.execute(text(
                "SELECT count(*), sum(n), min(slot), max(slot) FROM dead_letter_counts"))
            ).one()
            keys = (await conn.execute(text(
                "SELECT count(*) FROM (SELECT DISTINCT guild_id, signature, status "
                "FROM dead_letters) AS k"))).scalar_one()
        assert keys == 16 + 13  # every status of 4 signatures; 13 keys of 13 rows
        assert tuple(backfilled) == (keys, 63, 0, 0)
        assert await db_drift(db) == []
        # The triggers count what comes after.
        async with db.transaction() as conn:
            await conn.execute(BULK_INSERT, {"g": GUILD, "u": 100, "sigs": 7, "n": 30})
            await conn.execute(text("UPDATE dead_letters SET status = 'resolved' "
                                    "WHERE status = 'open'"))
            await conn.execute(text("DELETE FROM dead_letters WHERE id % 3 = 0"))
        assert await db_drift(db) == []
        rows = await count(db, "dead_letters", "guild_id = :g", g=GUILD)
        remediation = ProcessServices(db).remediation
        assert sum((await remediation.stats(GUILD)).by_status.values()) == rows
        # Down to 0001: table, triggers and function gone; back up: backfilled again.
        engine = create_async_engine(db.url)
        try:
            async with engine.connect() as conn:
                await conn.run_sync(_downgrade, "0001")
                await conn.commit()
                assert await _schema_objects(conn) == (False, 0, False)
        finally:
            await engine.dispose()
        await upgrade(empty_database, "head")
        assert await db_drift(db) == []
        assert await count(db, "dead_letter_counts") > 0
    finally:
        await db.dispose()
