"""Database.driver(): the hot paths' asyncpg connection goes back to the pool only clean."""

from __future__ import annotations

import asyncio

import pytest

from domain.errors import DatabaseUnavailable
from domain.lifecycle import Operation
from domain.persistence.database import Database
from domain.persistence.faults import Point
from tests.helpers import cmd, count, next_user
from tests.wiring import ProcessServices


@pytest.fixture
async def one_connection(migrated: str) -> Database:
    db = Database(migrated, pool_size=1, max_overflow=0)
    yield db  # type: ignore[misc]
    await db.dispose()


async def _pid(db: Database) -> int:
    async with db.driver() as conn:
        return int(await conn.fetchval("SELECT pg_backend_pid()"))


async def test_a_clean_connection_is_reused(one_connection: Database) -> None:
    assert await _pid(one_connection) == await _pid(one_connection)


async def test_a_connection_left_inside_a_transaction_is_not_handed_out_again(
        one_connection: Database) -> None:
    first = await _pid(one_connection)
    async with one_connection.driver() as conn:
        await conn.execute("BEGIN")
        await conn.execute("CREATE TEMP TABLE leftover (x int)")
    # A new connection, not one inside somebody's open transaction.
    async with one_connection.driver() as conn:
        assert not conn.is_in_transaction()
        assert int(await conn.fetchval("SELECT pg_backend_pid()")) != first
        assert await conn.fetchval("SELECT to_regclass('pg_temp.leftover')") is None


async def test_a_statement_cancelled_midway_closes_its_connection(
        one_connection: Database) -> None:
    first = await _pid(one_connection)
    inside = asyncio.Event()

    async def slow() -> None:
        async with one_connection.driver() as conn:
            inside.set()
            await conn.execute("SELECT pg_sleep(30)")

    task = asyncio.create_task(slow())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The pool's only slot was returned, with a fresh connection behind it.
    assert await asyncio.wait_for(_pid(one_connection), timeout=10) != first


async def test_an_error_in_a_statement_keeps_the_connection(one_connection: Database) -> None:
    first = await _pid(one_connection)
    with pytest.raises(Exception, match="division by zero"):
        async with one_connection.driver() as conn:
            await conn.fetchval("SELECT 1 / 0")
    assert await _pid(one_connection) == first


async def test_a_connection_that_dropped_fails_with_its_own_error_and_is_replaced(
        one_connection: Database) -> None:
    first = await _pid(one_connection)
    with pytest.raises(Exception) as info:
        async with one_connection.driver() as conn:
            conn.terminate()  # what a server restart or a network drop leaves behind
            await conn.fetchval("SELECT 1")
    # The caller sees why (the driver's "connection is closed"), not a failure of the
    # clean-up that followed it, and the pool opens a new connection.
    assert not isinstance(info.value, AttributeError), repr(info.value)
    assert "closed" in str(info.value)
    assert await _pid(one_connection) != first


async def test_a_write_that_gets_no_connection_in_time_is_unavailable_not_a_dead_letter(
        migrated: str, clean_db: Database) -> None:
    """Load, not failure: with every connection of the pool taken (one write held at the
    seam), another write gives up waiting for a connection. Nothing was sent, so the caller
    is told the database is unavailable (the bot spools, the API answers 503), and no dead
    letter is written."""
    tiny = Database(migrated, pool_size=1, max_overflow=0, pool_timeout=0.2)
    services = ProcessServices(tiny)
    holder, waiting = next_user(), next_user()
    gate = services.faults.hold(Point.MEMBERS_WRITE, when=lambda hit: hit.user_id == holder)
    first = asyncio.create_task(services.transitions.apply(cmd(Operation.JOIN, holder)))
    try:
        await asyncio.wait_for(gate.reached.wait(), 10)  # it holds the only connection
        with pytest.raises(DatabaseUnavailable):
            await services.transitions.apply(cmd(Operation.JOIN, waiting))
    finally:
        gate.release()
        await first
        await tiny.dispose()
    assert await count(clean_db, "dead_letters") == 0
    assert await count(clean_db, "members", "user_id = :u", u=waiting) == 0
