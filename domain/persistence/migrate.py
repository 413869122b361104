"""Schema upgrades through alembic, serialised across processes by an advisory lock.

The lock is transaction-scoped (`pg_advisory_xact_lock`) and the whole upgrade runs in that
one transaction (PostgreSQL's DDL is transactional): it holds behind a transaction-mode
pooler such as PgBouncer, where a session-level lock would be taken on one server
connection and released (or not) on another. Another process waits for the lock, then
finds the schema at head and does nothing."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from domain.persistence.database import asyncpg_url, driver_connect_args

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
# Any constant works; it only has to be the same in every Lifeline process.
MIGRATION_LOCK_KEY = 0x4C6966656C696E65  # "Lifeline"
LOCK = text("SELECT pg_advisory_xact_lock(:k)")


def alembic_config() -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    return cfg


def _upgrade(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def upgrade(url: str, revision: str = "head", *,
                  statement_cache_size: int | None = None) -> None:
    """Upgrade the schema; several processes starting at once run it once, the others wait.
    `statement_cache_size`: DB_STATEMENT_CACHE_SIZE (0 behind a transaction-mode pooler)."""
    engine = create_async_engine(
        asyncpg_url(url), pool_size=1, max_overflow=0,
        connect_args=driver_connect_args(statement_cache_size, "lifeline-migrate"))
    try:
        async with engine.begin() as conn:  # one transaction: the lock, then every step
            await conn.execute(LOCK, {"k": MIGRATION_LOCK_KEY})
            await conn.run_sync(_upgrade, revision)
    finally:
        await engine.dispose()
    log.info("database schema at %s", revision)
