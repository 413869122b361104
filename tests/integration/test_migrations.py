"""Processes that start at once migrate once: the upgrade holds a transaction-scoped
advisory lock, so it also holds behind a transaction-mode pooler (tests/pooler)."""

from __future__ import annotations

from tests.helpers import upgrades_started_while_the_lock_is_held


async def test_upgrades_started_at_once_wait_for_each_other_and_all_succeed(
        empty_database: str) -> None:
    outcome = await upgrades_started_while_the_lock_is_held(empty_database, empty_database)
    assert outcome.version == "0007"
    assert outcome.tables == 16  # the 15 tables of the schema and alembic_version, each once
    assert outcome.advisory_locks_left == 0
