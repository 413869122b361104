"""Processes that start at once behind PgBouncer (transaction mode) migrate once: the
upgrade's transaction-scoped advisory lock holds there, where a session lock would not."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from tests.helpers import upgrades_started_while_the_lock_is_held
from tests.pgbouncer import PgBouncer


async def test_upgrades_through_the_pooler_wait_for_each_other_and_all_succeed(
        empty_database: str, bouncer: PgBouncer) -> None:
    pooled = bouncer.url_for(str(make_url(empty_database).database))
    outcome = await upgrades_started_while_the_lock_is_held(empty_database, pooled)
    assert outcome.version == "0002"
    assert outcome.tables == 9
    # No advisory lock is left behind on a pooled server connection.
    assert outcome.advisory_locks_left == 0
