"""The SQL of reading dead letters: filters, keyset pages in either order, and the counts
of stats and autocomplete.

A page filtered by several statuses (the default, unresolved: `open` and `retrying`) is a
UNION ALL of one index-ordered scan per status, each stopping at the page's size, merged
and cut again: a few index entries read per status, never a filter and a sort over every
row of the guild (tests/integration/test_dead_letter_page_plan.py checks the plan on
100,000 entries).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.sql.elements import TextClause

from domain.entries import DeadLetterFilter
from domain.persistence.sql import COLS

# A page's entries come without their stack trace (up to 8 KiB each, read by `show`).
PAGE_COLS = COLS.replace("stack_trace", "NULL::text AS stack_trace")


def like_prefix(prefix: str) -> str:
    """A LIKE pattern for values starting with `prefix` (its wildcards escaped)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def filter_sql(guild_id: int, where: DeadLetterFilter
               ) -> tuple[list[str], list[str] | None, dict[str, Any]]:
    """WHERE clauses on dead_letters but the status, the same on dead_letter_counts with the
    status (None when the counters cannot answer: a source, user or id filter), and their
    parameters (`statuses` among them)."""
    clauses = ["guild_id = :g"]
    counters = ["guild_id = :g"]
    params: dict[str, Any] = {"g": guild_id, "statuses": list(where.statuses)}
    if where.statuses:
        counters.append("status = ANY(CAST(:statuses AS dead_letter_status[]))")
    if where.operation is not None:
        params["operation"] = where.operation
        # The counters know the operation through the signature (operation/reason/error).
        params["operation_prefix"] = like_prefix(where.operation + "/")
        clauses.append("operation = CAST(:operation AS member_operation)")
        counters.append("signature LIKE :operation_prefix")
    if where.source is not None:
        params["source"] = where.source
        clauses.append("source = CAST(:source AS transition_source)")
    if where.signature is not None:
        params["signature"] = where.signature
        clauses.append("signature = :signature")
        counters.append(clauses[-1])
    if where.user_id is not None:
        params["user_id"] = where.user_id
        clauses.append("user_id = :user_id")
    if where.id_prefix:
        params["id_prefix"] = where.id_prefix + "%"
        clauses.append("CAST(id AS text) LIKE :id_prefix")
    countable = where.source is None and where.user_id is None and not where.id_prefix
    return clauses, counters if countable else None, params


def page_ids_sql(where: DeadLetterFilter, clauses: list[str], params: dict[str, Any],
                 after: int | None) -> str:
    """The ids of a page (:limit of them, in the filter's order, past the cursor `after`):
    one index-ordered scan, or one per status merged (see the module's docstring). Adds
    the status parameters to `params`."""
    direction = "ASC" if where.oldest_first else "DESC"
    keyset = ([f"id {'>' if where.oldest_first else '<'} :after"]
              if after is not None else [])
    params["after"] = after

    def scan(extra: list[str]) -> str:
        return (f"SELECT id FROM dead_letters "  # noqa: S608
                f"WHERE {' AND '.join(clauses + extra + keyset)} "
                f"ORDER BY id {direction} LIMIT :limit")

    if not where.statuses:
        return scan([])
    branches = []
    for i, status in enumerate(where.statuses):
        params[f"status_{i}"] = status
        branches.append(f"({scan([f'status = CAST(:status_{i} AS dead_letter_status)'])})")
    if len(branches) == 1:
        return branches[0][1:-1]
    return (f"SELECT id FROM ({' UNION ALL '.join(branches)}) AS per_status "  # noqa: S608
            f"ORDER BY id {direction} LIMIT :limit")


def page_sql(where: DeadLetterFilter, clauses: list[str], params: dict[str, Any],
             after: int | None) -> TextClause:
    """A page's rows. The page's ids first, then its rows: selecting only ids lets the
    planner walk the index of the filters (index only) in id order. Asked for every column
    at once, it could prefer walking the primary key backwards and filtering, which reads
    every newer entry of every guild first: 465 ms for a guild whose open entries were all
    older than 900,000 others (bench/README.md)."""
    direction = "ASC" if where.oldest_first else "DESC"
    return text(f"SELECT {PAGE_COLS} FROM dead_letters WHERE id IN ("  # noqa: S608
                f"{page_ids_sql(where, clauses, params, after)}) ORDER BY id {direction}")


def status_clause(where: DeadLetterFilter) -> list[str]:
    """The status filter as a plain clause (for counting entries)."""
    return ["status = ANY(CAST(:statuses AS dead_letter_status[]))"] if where.statuses else []


# Counts of dead_letters by (signature, status) are sums of dead_letter_counts over the
# writer slots (see domain.persistence.tables.DeadLetterCount); a sum of 0 is a key whose
# entries are gone (kept, not shown). Ranked by open (open + retrying) entries, then all.
STATS_BY_SIGNATURE_AND_STATUS = text(
    """SELECT signature, status::text AS status, n,
              coalesce(sum(n) FILTER (WHERE status IN ('open', 'retrying')) OVER bysig, 0)
                AS open,
              sum(n) OVER bysig AS total
       FROM (SELECT signature, status, sum(n) AS n FROM dead_letter_counts
             WHERE guild_id = :g GROUP BY signature, status HAVING sum(n) <> 0) AS per
       WINDOW bysig AS (PARTITION BY signature)
       ORDER BY open DESC, total DESC, signature""")

# Ids grow with created_at (both set by the INSERT), so the oldest open entry is the first
# by id: an index probe instead of reading every open entry. (The id alone first, for the
# same reason as in page().)
OLDEST_OPEN_AGE = text(
    "SELECT extract(epoch FROM now() - created_at) FROM dead_letters "
    "WHERE id = (SELECT id FROM dead_letters WHERE guild_id = :g "
    "AND status = 'open' ORDER BY id LIMIT 1)")

OPEN_SIGNATURES = text(
    """SELECT signature, sum(n) AS open FROM dead_letter_counts
       WHERE guild_id = :g AND status = 'open' AND signature LIKE :prefix
       GROUP BY signature HAVING sum(n) <> 0
       ORDER BY sum(n) DESC, signature LIMIT :limit""")
