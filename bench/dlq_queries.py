"""3. Dead-letter queries at scale, through RemediationService.

1,000,000 dead letters (100,000 with --quick) over 100 guilds, bulk-loaded with
INSERT ... SELECT generate_series (through the triggers that keep dead_letter_counts, as any
write does), then VACUUM (ANALYZE) of both tables (ANALYZE for the statistics, and the
visibility map autovacuum would set in production, which index-only counts rely on): one
big guild holds 30% of them, the 99 others about 7,000 each; 70% resolved, 30% open; 200
signatures with a skewed popularity. Each query runs on the big guild and on a typical one.
The plans are read with EXPLAIN (ANALYZE, BUFFERS) of the exact statements the service ran
(captured from the engine), and saved in results.json. Last, the big guild's open entries
newer than the oldest 10% of the table are resolved, and its first page and stats are timed
again: the layout in which walking the primary key backwards reads most of the table.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event

from bench.common import Context, Report, Target, percentile, services
from domain.entries import signature_of
from domain.lifecycle import Operation
from domain.persistence.database import Database
from domain.vocabulary import ReasonCode

NAME = "dlq_queries"
TITLE = "Dead-letter queries at scale (list pages, signature filter, stats)"
BIG = 1_300_000_000_000_000_000
TYPICAL = BIG + 1 + 17
PAGE = 10  # /dlq list's page size (cogs/dlq_views.PAGE_SIZE)
DEPTH = 1000  # pages deep, by cursor
OPS = [op.value for op in Operation]
REASONS = [r.value for r in ReasonCode]
ERRORS = ["WriteConflict", "TransitionNotAllowed", "TimeoutError", "RuntimeError"]

LOAD = """
INSERT INTO dead_letters (guild_id, user_id, operation, from_state, to_state, observed_state,
    observed_version, reason_code, error_type, error_message, attempts, source,
    idempotency_key, correlation_id, payload, signature, status, remediation_count,
    resolved_by, resolution_note, created_at, updated_at)
SELECT g, u, op::member_operation, 'verification_pending', 'verified', 'verification_pending',
       5, reason::dead_letter_reason, etype,
       'another writer changed the member first (attempt 5: expected verification_pending '
         || 'at version ' || (i % 97) || ')',
       5, 'api', md5(i::text), md5((i + 1)::text),
       jsonb_build_object('guild_id', g, 'user_id', u, 'operation', op, 'source', 'api',
                          'idempotency_key', md5(i::text), 'actor_id', NULL, 'reason', NULL,
                          'correlation_id', md5((i + 1)::text), 'expected_state', NULL,
                          'expected_version', NULL),
       op || '/' || reason || '/' || etype,
       CASE WHEN resolved THEN 'resolved' ELSE 'open' END::dead_letter_status,
       CASE WHEN resolved THEN 1 ELSE 0 END,
       CASE WHEN resolved THEN 1200000000000000001 END,
       CASE WHEN resolved THEN 'replayed after the fix' END,
       created, created + CASE WHEN resolved THEN interval '1 hour' ELSE interval '0' END
FROM (
  SELECT i, s, resolved,
         CASE WHEN i % 10 < 3 THEN $2::bigint ELSE $2::bigint + 1 + (i / 10) % 99 END AS g,
         100000000000000000 + i % 50000 AS u,
         ($3::text[])[s % 14 + 1] AS op, ($4::text[])[(s / 14) % 4 + 1] AS reason,
         ($5::text[])[s % 4 + 1] || CASE WHEN s >= 4 THEN s::text ELSE '' END AS etype,
         now() - ($1 - i) * interval '2.5 seconds' AS created
  FROM (SELECT i, floor(200 * power(random(), 2))::int AS s, random() < 0.7 AS resolved
        FROM generate_series(1, $1) AS i) AS r) AS d
"""


def signature_number(s: int) -> str:
    etype = ERRORS[s % 4] + (str(s) if s >= 4 else "")
    return signature_of(OPS[s % 14], REASONS[(s // 14) % 4], etype)


class Capture:
    """The statements (and parameters) the service sends, as the driver sees them."""

    def __init__(self, db: Database) -> None:
        self.statements: list[tuple[str, Any]] = []
        self.on = False
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, parameters: Any,
              context: Any, executemany: bool) -> None:
        if self.on:
            self.statements.append((statement, parameters))


async def timed(call: Callable[[], Awaitable[Any]], runs: int) -> dict[str, float]:
    for _ in range(3):
        await call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(percentile(samples, 50), 2),
            "p95_ms": round(percentile(samples, 95), 2), "runs": runs}


async def explain(ctx: Context, statements: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    conn = await ctx.connect()
    plans = []
    try:
        for sql, params in statements:
            rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *(params or ()))
            text = "\n".join(r[0] for r in rows)
            plans.append({"sql": " ".join(sql.split()), "plan": text,
                          "uses_index": "Index" in text,
                          "seq_scan": SEQ_SCAN.search(text) is not None})
    finally:
        await conn.close()
    return plans


async def run(ctx: Context) -> Report:
    total = 100_000 if ctx.quick else 1_000_000
    runs = 15 if ctx.quick else 60
    report = ctx.report(NAME, TITLE, {
        "dead_letters": total, "guilds": 100, "big_guild_share": 0.3, "resolved_share": 0.7,
        "signatures": 200, "page_size": PAGE, "deep_page": DEPTH, "runs_per_query": runs,
        "statistics": "VACUUM (ANALYZE) after the load"})
    await ctx.reset()
    conn = await ctx.connect()
    try:
        started = time.perf_counter()
        await conn.execute("SELECT setseed(0.42)")
        await conn.execute(LOAD, total, BIG, OPS, REASONS, ERRORS)
        loaded = time.perf_counter() - started
        await conn.execute("VACUUM (ANALYZE) dead_letters, dead_letter_counts")
        report.metrics["load_seconds"] = round(loaded, 1)
        report.metrics["vacuum_analyze_seconds"] = round(time.perf_counter() - started - loaded, 1)
        sizes = {g: await conn.fetchval(
            "SELECT count(*) FILTER (WHERE status = 'open') FROM dead_letters "
            "WHERE guild_id = $1", g) for g in (BIG, TYPICAL)}
        users = {g: await conn.fetchval(  # the member of the newest open entry
            "SELECT user_id FROM dead_letters WHERE guild_id = $1 AND status = 'open' "
            "ORDER BY id DESC LIMIT 1", g) for g in (BIG, TYPICAL)}
    finally:
        await conn.close()
    db = ctx.database(pool_size=2)
    service = services(db).remediation
    capture = Capture(db)
    signature = signature_number(20)  # a mid-popular signature
    queries: dict[str, Any] = {}
    plans: dict[str, list[dict[str, Any]]] = {}

    async def measure(key: str, call: Callable[[], Awaitable[Any]]) -> None:
        """p50/p95 over `runs`, then the plans of the statements one more call sends."""
        queries[key] = await timed(call, runs)
        capture.statements.clear()
        capture.on = True
        await call()
        capture.on = False
        plans[key] = await explain(ctx, capture.statements)
        report.row(key, f"p50 {queries[key]['p50_ms']} ms, p95 {queries[key]['p95_ms']} ms")

    try:
        for label, guild in (("big guild", BIG), ("typical guild", TYPICAL)):
            deep = None
            if sizes[guild] > DEPTH * PAGE:
                c = await ctx.connect()
                try:
                    deep = str(await c.fetchval(
                        "SELECT id FROM dead_letters WHERE guild_id = $1 AND status = 'open' "
                        "ORDER BY id DESC OFFSET $2 LIMIT 1", guild, DEPTH * PAGE - 1))
                finally:
                    await c.close()
            cases: dict[str, Callable[[], Awaitable[Any]]] = {}
            for suffix, counting in TOTALS.items():
                cases[f"first page{suffix}"] = _call(service.page, guild, status="open",
                                                     limit=PAGE, **counting)
                # Every door's default: open and retrying, one index scan per status.
                cases[f"first page, unresolved (the default){suffix}"] = _call(
                    service.page, guild, limit=PAGE, **counting)
                if deep is not None:
                    cases[f"page {DEPTH} by cursor{suffix}"] = _call(
                        service.page, guild, status="open", limit=PAGE, cursor=deep,
                        **counting)
                cases[f"signature filter{suffix}"] = _call(
                    service.page, guild, status="open", signature=signature, limit=PAGE,
                    **counting)
            # A user filter has no counter: the matches are counted, up to count_limit
            # (the API's and /dlq list's 1000).
            cases["user filter, count_limit=1000"] = _call(
                service.page, guild, status="open", user_id=users[guild], limit=PAGE,
                count_limit=1000)
            cases["stats"] = _call(service.stats, guild)
            cases["row count alone (what counting instead of the counters would cost)"] = \
                _call(_direct, ctx, COUNT, guild)
            for case, call in cases.items():
                await measure(f"{label}: {case}", call)
        # A layout the planner's independence assumption gets wrong: the big guild's open
        # entries are all older than 90% of the table (the newer ones resolved).
        c = await ctx.connect()
        try:
            await c.execute(
                "UPDATE dead_letters SET status = 'resolved' WHERE guild_id = $1 "
                "AND status = 'open' AND id > (SELECT max(id) / 10 FROM dead_letters)", BIG)
            await c.execute("VACUUM (ANALYZE) dead_letters, dead_letter_counts")
        finally:
            await c.close()
        old_open = {"first page (open entries only among the oldest 10%)":
                    _call(service.page, BIG, status="open", limit=PAGE),
                    "stats (same layout)": _call(service.stats, BIG)}
        for case, call in old_open.items():
            await measure(f"big guild: {case}", call)
    finally:
        await db.dispose()
        if "dlq_conn" in ctx.shared:
            await ctx.shared.pop("dlq_conn").close()
    report.metrics.update({"open_entries": {"big guild": sizes[BIG],
                                            "typical guild": sizes[TYPICAL]},
                           "signature": signature, "queries": queries})
    report.extra["plans"] = plans
    seq = sorted(k for k, ps in plans.items() if any(p["seq_scan"] for p in ps))
    report.row("plans with a Seq Scan on dead_letters", ", ".join(seq) or "none")
    def worst(marker: str) -> float:
        return max(float(v["p95_ms"]) for k, v in queries.items()
                   if ("page" in k or "filter" in k) and (marker in k if marker else
                                                          "count_limit" not in k
                                                          and "False" not in k))

    stats = [v["p95_ms"] for k, v in queries.items() if "stats" in k]
    report.targets.append(Target("page p95, worst (exact total from the counters: /dlq list, "
                                 "the API)", worst(""), 5, "<=", "ms"))
    report.targets.append(Target("page p95, worst (user filter, counted to 1000)",
                                 worst("count_limit"), 5, "<=", "ms"))
    report.targets.append(Target("page p95, worst (with_total=False)", worst("False"), 5, "<=",
                                 "ms"))
    report.targets.append(Target("stats p95, worst", max(stats), 50, "<=", "ms"))
    report.targets.append(Target("plans with a Seq Scan on dead_letters", len(seq), 0, "<="))
    return report


# dead_letters only: dead_letter_counts is small (a row per guild, signature, status and
# writer slot), and the planner rightly reads it whole when a guild's rows are spread out.
SEQ_SCAN = re.compile(r"Seq Scan on dead_letters\b")
COUNT = "SELECT count(*) FROM dead_letters WHERE guild_id = $1 AND status = 'open'"
# How the page's total is computed: for status / signature filters, exact from the counters
# (what /dlq list and the API get), or none.
TOTALS: dict[str, dict[str, Any]] = {"": {}, ", with_total=False": {"with_total": False}}


async def _direct(ctx: Context, sql: str, guild: int) -> Any:
    conn = ctx.shared.get("dlq_conn")
    if conn is None:
        conn = ctx.shared["dlq_conn"] = await ctx.connect()
    return await conn.fetchval(sql, guild)


def _call(fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
          ) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        return await fn(*args, **kwargs)
    return call
