"""Tests in this folder run against a real PgBouncer in transaction mode: the schema is
made directly (as `python -m bot migrate` against the server would), everything else goes
through the pooler, with `DB_STATEMENT_CACHE_SIZE=0` as the README says."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.engine import make_url

from domain.persistence.database import Database
from tests.pgbouncer import PgBouncer, PgBouncerMissing, start_pgbouncer


@pytest.fixture(scope="session")
def bouncer(pg_url: str) -> Iterator[PgBouncer]:
    try:
        pooler = start_pgbouncer(pg_url)
    except PgBouncerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    yield pooler
    pooler.stop()


@pytest.fixture(scope="session")
async def migrated(migrated: str, bouncer: PgBouncer) -> str:
    """The test database, through the pooler."""
    return bouncer.url_for(str(make_url(migrated).database))


@pytest.fixture(scope="session")
async def db(migrated: str) -> AsyncIterator[Database]:
    database = Database(migrated, pool_size=25, max_overflow=10, statement_cache_size=0)
    yield database
    await database.dispose()


@pytest.fixture(autouse=True)
def no_prepared_statement_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Processes a test starts are configured as the README says for a pooler."""
    monkeypatch.setenv("DB_STATEMENT_CACHE_SIZE", "0")
