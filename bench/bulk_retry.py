"""4. Bulk retry: 10,000 open dead letters of one signature whose cause has been removed,
retried through RemediationService.retry_group: 8 workers, each claiming 16 entries in one
statement, replaying them one by one, and writing their 16 outcomes (status, audit row,
mirror row each) in one transaction.

Members wait in verification_pending (with their ledger); each has one open dead letter for
`verify` (retries_exhausted / WriteConflict), its payload the command as the recorder stores
it. The guild is set up (log channel, verified role), so each retry also queues its
remediation mirror line and the verify its role sync, as in production. Afterwards: every
entry resolved, exactly one `verify` ledger row per member, invariants intact.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from bench.common import ACTOR, Context, Report, Target, services
from bench.ledger import check_invariants, seed_members, violations
from domain.entries import signature_of
from domain.lifecycle import Operation, Source, State
from domain.vocabulary import ReasonCode

NAME = "bulk_retry"
TITLE = "Bulk retry of one signature (retry_group)"
GUILD = 1_400_000_000_000_000_001
SIGNATURE = signature_of(Operation.VERIFY.value, ReasonCode.RETRIES_EXHAUSTED.value,
                         "WriteConflict")

DEAD_LETTERS = """
INSERT INTO dead_letters (guild_id, user_id, operation, from_state, to_state, observed_state,
    observed_version, reason_code, error_type, error_message, attempts, source,
    idempotency_key, correlation_id, payload, signature, status)
SELECT $1, u, 'verify', 'verification_pending', 'verified', 'verification_pending', 5,
       'retries_exhausted', 'WriteConflict',
       'another writer changed the member first (attempt 5: expected verification_pending '
         || 'at version 5)',
       5, 'api', 'web-verify-' || u, md5(u::text),
       jsonb_build_object('guild_id', $1::bigint, 'user_id', u, 'operation', 'verify',
                          'source', 'api', 'idempotency_key', 'web-verify-' || u,
                          'actor_id', NULL, 'reason', NULL, 'correlation_id', md5(u::text),
                          'expected_state', NULL, 'expected_version', NULL),
       $2, 'open'
FROM generate_series($4::bigint, $4::bigint + $3 - 1) AS u
"""
FIRST_USER = 100_000_000_000_000_001  # snowflake-sized, as mirror lines show them


async def run(ctx: Context) -> Report:
    count = 2_000 if ctx.quick else 10_000
    concurrency = 8
    report = ctx.report(NAME, TITLE, {
        "entries": count, "signature": SIGNATURE, "group_concurrency": concurrency,
        "guild": "set up: log channel (mirror level dead_letters), verified role"})
    await ctx.reset()
    conn = await ctx.connect()
    try:
        await seed_members(conn, GUILD, count, (State.VERIFICATION_PENDING,), FIRST_USER)
        await conn.execute(DEAD_LETTERS, GUILD, SIGNATURE, count, FIRST_USER)
        await conn.execute(
            "INSERT INTO guild_settings (guild_id, log_channel_id, verified_role_id) "
            "VALUES ($1, $2, $3)", GUILD, GUILD + 10, GUILD + 20)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    db = ctx.database(pool_size=concurrency + 4)
    svc = services(db, group_concurrency=concurrency)
    calls: list[tuple[float, int, int, int]] = []
    started = time.perf_counter()

    def progress(done: int, total: int, resolved: int) -> None:
        calls.append((time.perf_counter() - started, done, total, resolved))

    try:
        result = await svc.remediation.retry_group(GUILD, SIGNATURE, ACTOR, Source.STAFF,
                                                   progress=progress)
        elapsed = time.perf_counter() - started
    finally:
        await db.dispose()
    conn = await ctx.connect()
    try:
        verify_rows = await conn.fetchval(
            "SELECT count(*) FROM member_transitions WHERE guild_id = $1 AND operation = 'verify'",
            GUILD)
        doubled = await conn.fetchval(
            "SELECT count(*) FROM (SELECT user_id FROM member_transitions WHERE guild_id = $1 "
            "AND operation = 'verify' GROUP BY user_id HAVING count(*) > 1) d", GUILD)
        states = dict(await conn.fetch(
            "SELECT status::text, count(*) FROM dead_letters WHERE guild_id = $1 GROUP BY 1",
            GUILD))
        audit = await conn.fetchval(
            "SELECT count(*) FROM remediation_actions WHERE guild_id = $1", GUILD)
        outbox = dict(await conn.fetch(
            "SELECT kind::text, count(*) FROM outbox WHERE guild_id = $1 GROUP BY 1", GUILD))
        check = await check_invariants(conn, GUILD)
    finally:
        await conn.close()
    rate = result.total / elapsed if elapsed else 0.0
    last = calls[-1] if calls else None
    monotonic = all(b[1] > a[1] for a, b in itertools.pairwise(calls))
    metrics: dict[str, Any] = {
        "seconds": round(elapsed, 2), "entries_per_s": round(rate, 1),
        "result": {"total": result.total, "resolved": result.resolved, "failed": result.failed,
                   "skipped": result.skipped},
        "progress_calls": len(calls), "progress_last": last, "progress_monotonic": monotonic,
        "progress_first_seconds": round(calls[0][0], 3) if calls else None,
        "verify_ledger_rows": verify_rows, "members_verified_twice": doubled,
        "dead_letter_status": states, "remediation_actions": audit, "outbox_rows": outbox,
        "invariants": check}
    report.metrics = metrics
    report.row("entries/s", f"{rate:,.0f} ({result.total:,} in {elapsed:.1f} s; resolved "
                            f"{result.resolved:,}, failed {result.failed}, skipped "
                            f"{result.skipped})")
    report.row("progress callback", f"{len(calls):,} calls, last {last[1:] if last else None}, "
                                    f"done count strictly increasing: {monotonic}")
    report.row("verify ledger rows / members verified twice", f"{verify_rows:,} / {doubled}")
    report.row("dead letters by status, audit rows, outbox rows",
               f"{states}, {audit:,}, {outbox}")
    report.row("invariant violations", str(violations(check)))
    report.targets += [
        Target("entries retried per second", round(rate, 1), 1000, ">="),
        Target("verify ledger rows - entries (double or missed applications)",
               abs(verify_rows - count) + doubled, 0, "<="),
        Target("invariant violations", violations(check), 0, "<="),
    ]
    return report
