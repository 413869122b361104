"""The unresolved page (the default of every door) on 100,000 entries: one index-ordered
scan per status, each stopping at the page's size; no Sort over the guild's entries.

The guild's unresolved entries are its oldest (ids low), under 95,000 closed ones: walking
the guild's entries newest first and filtering would read nearly all of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from domain.dead_letter_reads import entry_filter
from domain.persistence.database import Database
from domain.persistence.dead_letter_queries import filter_sql, page_sql
from tests.helpers import GUILD, OTHER_GUILD
from tests.wiring import ProcessServices

ENTRIES = 100_000
LIMIT = 21  # a page of 20, plus one to know there is a next

LOAD = text(
    """INSERT INTO dead_letters (guild_id, user_id, operation, reason_code, error_type,
           error_message, attempts, source, idempotency_key, correlation_id, payload,
           signature, status)
       SELECT CASE WHEN i % 10 = 0 THEN CAST(:other AS bigint) ELSE CAST(:g AS bigint) END,
              1000 + i, 'verify',
              'retries_exhausted', 'E' || (i % 7), 'm', 1, 'bot', md5(i::text), 'c', '{}',
              'verify/retries_exhausted/E' || (i % 7),
              CAST(CASE WHEN i <= 3000 THEN 'open' WHEN i <= 3300 THEN 'retrying'
                        WHEN i % 3 = 0 THEN 'dismissed' ELSE 'resolved' END
                   AS dead_letter_status)
       FROM generate_series(1, :n) AS i""")


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _explain(db: Database, **filters: Any) -> list[dict[str, Any]]:
    where = entry_filter(**filters)
    clauses, _, params = filter_sql(GUILD, where)
    sql = page_sql(where, clauses, params, None)
    async with db.autocommit() as conn:
        raw = (await conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql.text}"),
                                  {**params, "limit": LIMIT})).scalar_one()
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    return list(_nodes(plan))


@pytest.fixture
async def loaded(services: ProcessServices) -> Database:
    async with services.db.transaction() as conn:
        await conn.execute(LOAD, {"g": GUILD, "other": OTHER_GUILD, "n": ENTRIES})
    async with services.db.autocommit() as conn:
        await conn.execute(text("VACUUM (ANALYZE) dead_letters"))
    return services.db


@pytest.mark.parametrize("filters", [
    {}, {"order": "oldest"}, {"signature": "verify/retries_exhausted/E3"},
    {"operation": "verify", "order": "oldest"},
])
async def test_the_unresolved_page_reads_a_page_per_status_not_the_guild(
        loaded: Database, filters: dict[str, Any]) -> None:
    nodes = await _explain(loaded, **filters)
    scans = [n for n in nodes if "Index" in n["Node Type"] and n.get("Index Name", "")
             .startswith("ix_dead_letters_guild_")]
    # One index scan per status (open, retrying), on a (guild, [signature,] status, id)
    # index, each reading at most a page.
    assert len(scans) == 2, [(n["Node Type"], n.get("Index Name")) for n in nodes]
    assert all(n["Index Name"] in ("ix_dead_letters_guild_status_id",
                                   "ix_dead_letters_guild_signature") for n in scans)
    assert all(n["Actual Rows"] <= LIMIT for n in scans)
    # No node reads the guild's entries: no sequential scan, and any Sort only merges the
    # two pages (at most 2 x LIMIT rows).
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan"]
    sorts = [n for n in nodes if n["Node Type"] in ("Sort", "Incremental Sort")]
    assert all(n["Actual Rows"] <= 2 * LIMIT for n in sorts), sorts
    assert max(n["Actual Rows"] for n in nodes) <= 2 * LIMIT


async def test_the_page_is_the_unresolved_entries_in_order(
        loaded: Database, services: ProcessServices) -> None:
    newest = await services.remediation.page(GUILD, limit=20)
    oldest = await services.remediation.page(GUILD, limit=20, order="oldest")
    assert {e.status for e in newest.items + oldest.items} == {"open", "retrying"} or \
        {e.status for e in newest.items} == {"retrying"}
    assert [e.id for e in newest.items] == sorted((e.id for e in newest.items), reverse=True)
    assert [e.id for e in oldest.items] == sorted(e.id for e in oldest.items)
    async with loaded.autocommit() as conn:
        expected_total = (await conn.execute(text(
            "SELECT count(*) FROM dead_letters WHERE guild_id = :g "
            "AND status IN ('open', 'retrying')"), {"g": GUILD})).scalar_one()
        first_ids = list((await conn.execute(text(
            "SELECT id FROM dead_letters WHERE guild_id = :g "
            "AND status IN ('open', 'retrying') ORDER BY id LIMIT 20"), {"g": GUILD})
                          ).scalars())
    assert newest.total == oldest.total == expected_total
    assert [e.id for e in oldest.items] == first_ids
