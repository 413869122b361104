"""Engine construction and the unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.util import greenlet_spawn

# A unique constraint violated by a statement run on the driver connection (see `driver()`).
UniqueViolation = asyncpg.exceptions.UniqueViolationError

_DRIVER_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]


def asyncpg_url(url: str) -> str:
    """Normalise `postgres://`, `postgresql://` or `postgresql+asyncpg://` to the asyncpg driver."""
    parsed = make_url(url)
    if parsed.drivername not in ("postgres", "postgresql", "postgresql+asyncpg"):
        raise ValueError(f"not a PostgreSQL URL (scheme {parsed.drivername!r})")
    if parsed.password == "":
        parsed = parsed.set(password=None)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


@dataclass(frozen=True)
class DriverStatement:
    """A `text()` statement compiled once for asyncpg (`$1, $2, ...`): the SQL is written once,
    with named parameters, and a hot path runs it on the driver connection."""

    sql: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, clause: TextClause) -> DriverStatement:
        compiled = clause.compile(dialect=_DRIVER_DIALECT)
        return cls(compiled.string, tuple(compiled.positiontup or ()))

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


def _refuse_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Checkout guard in place of `pool_pre_ping`. A connection the server closed (restart,
    shutdown, pg_terminate_backend, idle timeout) is already marked closed by asyncpg, whose
    socket the event loop watches while the connection sits in the pool; raising here makes
    the pool replace it, as a failed ping would. The ping cost three round trips per checkout
    (BEGIN; ";"; ROLLBACK), about a quarter of the client CPU of a transition."""
    if dbapi_connection.driver_connection.is_closed():
        raise sa_exc.DisconnectionError("the server closed this pooled connection")


def driver_connect_args(statement_cache_size: int | None, application_name: str
                        ) -> dict[str, Any]:
    """asyncpg's connect arguments, for every engine of a process (the migration's too).
    `statement_cache_size=0` when a transaction-mode pooler (PgBouncer) sits in front: with
    its cache, asyncpg names prepared statements `__asyncpg_stmt_<n>__`, numbered per
    process, and two processes sharing a server connection through the pooler both create
    `__asyncpg_stmt_1__` ("prepared statement ... already exists")."""
    args: dict[str, Any] = {"server_settings": {"application_name": application_name}}
    if statement_cache_size is not None:
        args["statement_cache_size"] = statement_cache_size
    return args


class Database:
    """Owns the engine. `transaction()` is the unit of work: commit on success, else rollback."""

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 10,
                 statement_cache_size: int | None = None, application_name: str = "lifeline",
                 pool_timeout: float = 30.0) -> None:
        connect_args = driver_connect_args(statement_cache_size, application_name)
        self.url = asyncpg_url(url)
        self.engine: AsyncEngine = create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            # The most recently used connection first: its backend is still warm (a FIFO
            # pool rotated through every connection, each waking a backend that had slept).
            pool_use_lifo=True,
            # How long a checkout waits for a connection before giving up (the pool is
            # exhausted: the database is unavailable to this process for now).
            pool_timeout=pool_timeout,
            connect_args=connect_args,
        )
        event.listen(self.engine.sync_engine, "checkout", _refuse_closed)
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

    def driver(self) -> DriverConnection:
        """`async with db.driver() as conn:` the asyncpg connection of a pooled connection
        (same pool, same checkout guard), for hot paths of single-statement reads and writes
        (`DriverStatement`): each statement is its own transaction, and neither the checkout
        nor the statements do SQLAlchemy Connection work. Errors are asyncpg's
        (`UniqueViolation`, ...). A transaction opened on it (`async with
        conn.transaction()`) must end inside the block: a connection still in one is
        closed, not returned. (A class, not @asynccontextmanager: it runs twice per
        transition, and the generator machinery cost as much as the rest.)"""
        return DriverConnection(self.engine)

    async def dispose(self) -> None:
        await self.engine.dispose()


class DriverConnection:
    """`async with` one pooled connection's asyncpg connection (see `Database.driver`)."""

    __slots__ = ("_engine", "_pooled")

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._pooled: Any = None

    async def __aenter__(self) -> asyncpg.Connection:
        self._pooled = await greenlet_spawn(self._engine.sync_engine.raw_connection)
        conn: asyncpg.Connection = self._pooled.driver_connection
        return conn

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        pooled, self._pooled = self._pooled, None
        try:
            if exc is not None and not isinstance(exc, Exception):
                # Cancelled mid-statement: the connection's state is unknown, so it is closed
                # rather than handed out again (what a SQLAlchemy Connection does).
                await greenlet_spawn(pooled.invalidate)
            elif pooled.driver_connection.is_closed() \
                    or pooled.driver_connection.is_in_transaction():
                # Never hand out a connection the server closed (asked whether it is in a
                # transaction, a closed one raises AttributeError, which hid the error that
                # closed it) or one inside a transaction.
                await greenlet_spawn(pooled.invalidate)
        finally:
            # Returning it does no I/O (SQLAlchemy never began a transaction on it), so the
            # call completes without yielding to the event loop and cannot be interrupted;
            # a shielded task here waited about a millisecond for its turn at 16 writers.
            await greenlet_spawn(pooled.close)


def is_unavailable(error: BaseException) -> bool:
    """True when `error` (or what caused it) means the database cannot be reached."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.OperationalError | sa_exc.InterfaceError):
            return True
        if isinstance(current, sa_exc.TimeoutError):
            # No pooled connection within the pool timeout: nothing was sent, nothing
            # changed; under load this is a reason to wait (spool, 503), not a dead letter.
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


# What a failed statement raises, through SQLAlchemy or on the driver connection (asyncpg),
# for code outside this package that maps database errors to an answer (the HTTP API's
# exception handlers) without importing the libraries.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.SQLAlchemyError, asyncpg.exceptions.PostgresError,
    asyncpg.exceptions.InterfaceError)


def url_password(url: str) -> str | None:
    """The password in a database URL, if it has one (to keep it out of logs)."""
    password = make_url(url).password
    return str(password) if password else None
