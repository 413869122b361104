"""Engine construction and the unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


def asyncpg_url(url: str) -> str:
    """Normalise `postgres://`, `postgresql://` or `postgresql+asyncpg://` to the asyncpg driver."""
    parsed = make_url(url)
    if parsed.drivername not in ("postgres", "postgresql", "postgresql+asyncpg"):
        raise ValueError(f"not a PostgreSQL URL (scheme {parsed.drivername!r})")
    if parsed.password == "":
        parsed = parsed.set(password=None)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


class Database:
    """Owns the engine. `transaction()` is the unit of work: commit on success, else rollback."""

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 10,
                 statement_cache_size: int | None = None, application_name: str = "lifeline"
                 ) -> None:
        connect_args: dict[str, Any] = {"server_settings": {"application_name": application_name}}
        if statement_cache_size is not None:
            # 0 when a transaction-mode pooler (pgbouncer) sits in front.
            connect_args["statement_cache_size"] = statement_cache_size
        self.url = asyncpg_url(url)
        self.engine: AsyncEngine = create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=True,
            connect_args=connect_args,
        )
        self._autocommit_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A connection where each statement is its own transaction (single-statement writes)."""
        async with self._autocommit_engine.connect() as conn:
            yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()


def is_unavailable(error: BaseException) -> bool:
    """True when `error` (or what caused it) means the database cannot be reached."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.OperationalError | sa_exc.InterfaceError):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, ConnectionError | TimeoutError | FileNotFoundError):
            return True
        name = type(current).__name__
        if name in ("CannotConnectNowError", "ConnectionDoesNotExistError",
                    "ConnectionFailureError", "InterfaceError", "AdminShutdownError",
                    "CrashShutdownError", "TooManyConnectionsError"):
            return True
        current = current.__cause__ or current.__context__
    return False
