"""2. Contention: 32 writers on 10 hot members for 10 s with the default RetryPolicy().

Each writer loops: pick one of the hot members, read it (`TransitionService.get_member`),
choose the operation its fresh state allows (verify from verification_pending, reverify from
verified) and apply it, as a real client would. The writers are tasks of one process sharing
one TransitionService, so they take turns per member (domain/turns.py) rather than racing on
the compare-and-set. Three workloads, 10 s each (5 s in --quick):

- `new key per request`: every request is its own intent (a fresh idempotency key). Two
  writers who read the same state both send it; the second, when its turn comes, finds the
  operation no longer allowed and is refused (TransitionNotAllowed). Without the turns it
  lost the race instead and, by design (lifecycle.md step 5), ended as a
  `not_applicable_after_conflict` dead letter (19-22% of requests).
- `key from the read`: the key is derived from what the writer saw (`<op>:<user>:<version>`),
  as Lifeline's own gateway handlers derive keys from the event; writers with the same intent
  share one transition (idempotent repeats, answered without a database round trip while
  the first is in flight).
- `strict`: new key, and the state and version read are passed as expected_state /
  expected_version (the web app's mode, lifecycle.md): a stale read is answered at once with
  a StrictConflict, nothing retried or dead-lettered.

Besides accepted transitions/s it reports every request answered per second: each request
costs the client's read and Lifeline's read (plus the write when accepted), and how many
requests one accepted transition takes is set by the workload (three writers per member
asking for the same step), not by Lifeline.

Afterwards the ledger invariants are checked for every hot member.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.common import GUILD, Context, Report, Target, services
from bench.cpu import sample, usage
from bench.ledger import check_invariants, seed_members, violations
from bench.throughput import TOGGLE
from domain.commands import TransitionCommand
from domain.errors import DomainError, StrictConflict, TransitionDeadLettered
from domain.lifecycle import Source, State, TransitionNotAllowed
from domain.metrics import CountingMetrics
from domain.transitions import RetryPolicy, TransitionService

NAME = "contention"
TITLE = "Contention: 32 writers on 10 hot members, default RetryPolicy"
WRITERS = 32
HOT = 10
WORKLOADS = ("new key per request", "key from the read", "strict")


@dataclass
class Outcomes:
    requests: int = 0
    applied: int = 0
    repeats: int = 0
    refused: int = 0  # the state changed between the client's read and apply's own read
    strict_conflicts: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    other: Counter[str] = field(default_factory=Counter)


async def writer(svc: TransitionService, guild: int, workload: str, deadline: float,
                 out: Outcomes) -> None:
    strict = workload == "strict"
    while time.perf_counter() < deadline:
        user = random.randint(1, HOT)
        member = await svc.get_member(guild, user)
        assert member is not None
        op, _ = TOGGLE[member.state]
        key = f"{op.value}:{user}:{member.version}" if workload == "key from the read" \
            else uuid.uuid4().hex
        out.requests += 1
        try:
            result = await svc.apply(TransitionCommand(
                guild_id=guild, user_id=user, operation=op, source=Source.API,
                idempotency_key=key, expected_state=member.state if strict else None,
                expected_version=member.version if strict else None))
        except TransitionDeadLettered as exc:
            out.dead_letters[exc.reason_code] += 1
        except TransitionNotAllowed:
            out.refused += 1
        except StrictConflict:
            out.strict_conflicts += 1
        except DomainError as exc:
            out.other[exc.code] += 1
        else:
            if result.applied:
                out.applied += 1
            else:
                out.repeats += 1


async def run_workload(ctx: Context, guild: int, workload: str, seconds: float
                       ) -> dict[str, Any]:
    conn = await ctx.connect()
    try:
        await seed_members(conn, guild, HOT, (State.VERIFICATION_PENDING, State.VERIFIED))
    finally:
        await conn.close()
    db = ctx.database(pool_size=WRITERS)
    svc = services(db, RetryPolicy())
    out = Outcomes()
    metrics: CountingMetrics = svc.metrics
    try:
        # Warm-up (connections, prepared statements), not counted.
        warm = time.perf_counter() + 0.5
        await asyncio.gather(*(writer(svc.transitions, guild, workload, warm, Outcomes())
                               for _ in range(WRITERS)))
        conflicts0 = sum(metrics.conflicts.values())
        retries0 = sum(metrics.retries.values())
        before = sample(ctx.pgdata)
        started = before.wall
        await asyncio.gather(*(writer(svc.transitions, guild, workload,
                                      started + seconds, out) for _ in range(WRITERS)))
        after = sample(ctx.pgdata)
        elapsed = after.wall - started
    finally:
        await db.dispose()
    conflicts = sum(metrics.conflicts.values()) - conflicts0
    retries = sum(metrics.retries.values()) - retries0
    dead = sum(out.dead_letters.values())
    return {
        "seconds": round(elapsed, 2), "requests": out.requests, "applied": out.applied,
        "accepted_per_s": round(out.applied / elapsed, 1),
        "requests_per_s": round(out.requests / elapsed, 1),
        "requests_per_accepted": round(out.requests / out.applied, 2) if out.applied else None,
        "idempotent_repeats": out.repeats, "refused_not_allowed": out.refused,
        "strict_conflicts": out.strict_conflicts, "cpu": usage(before, after),
        "conflicts": conflicts, "retries": retries,
        "retries_per_accepted": round(retries / out.applied, 3) if out.applied else None,
        "dead_letters": dict(out.dead_letters), "dead_letter_total": dead,
        "dead_letter_rate_pct": round(100 * dead / out.requests, 2) if out.requests else None,
        "other_errors": dict(out.other)}


async def run(ctx: Context) -> Report:
    seconds = 5.0 if ctx.quick else 10.0
    policy = RetryPolicy()
    report = ctx.report(NAME, TITLE, {
        "writers": WRITERS, "hot_members": HOT, "seconds_per_workload": seconds,
        "retry_policy": {"max_attempts": policy.max_attempts,
                         "backoff_initial": policy.backoff_initial,
                         "backoff_max": policy.backoff_max},
        "client": "read the member, send the operation its state allows (verify/reverify)",
        "workloads": list(WORKLOADS)})
    await ctx.reset()
    uniform16 = ctx.shared.get("lifeline_uniform_16")
    results: dict[str, dict[str, Any]] = {}
    checks: dict[str, dict[str, int]] = {}
    for i, workload in enumerate(WORKLOADS):
        guild = GUILD + 1 + i
        results[workload] = await run_workload(ctx, guild, workload, seconds)
        conn = await ctx.connect()
        try:
            checks[workload] = await check_invariants(conn, guild)
        finally:
            await conn.close()
        r = results[workload]
        report.row(f"{workload}: accepted/s", f"{r['accepted_per_s']:,.0f} "
                   f"({r['applied']:,} of {r['requests']:,} requests; "
                   f"{r['idempotent_repeats']:,} idempotent repeats, "
                   f"{r['refused_not_allowed']:,} refused, {r['strict_conflicts']:,} strict "
                   f"conflicts; client {r['cpu']['client_cores']} cores)")
        report.row(f"{workload}: requests answered/s",
                   f"{r['requests_per_s']:,.0f} ({r['requests_per_accepted']} per accepted "
                   f"transition" + (f"; {r['requests_per_s'] / uniform16:.2f} x the uniform "
                                    f"16-writer transitions/s" if uniform16 else "") + ")")
        report.row(f"{workload}: conflicts, retries/accepted",
                   f"{r['conflicts']:,}, {r['retries_per_accepted']}")
        report.row(f"{workload}: dead letters", f"{r['dead_letter_total']:,} = "
                   f"{r['dead_letter_rate_pct']}% of requests {r['dead_letters']}")
        report.row(f"{workload}: invariant violations", f"{violations(checks[workload])} "
                   f"({checks[workload]['ledger_rows']:,} ledger rows)")
    report.metrics = {"by_workload": results, "invariants": checks,
                      "uniform_16_writers_reference": uniform16}
    for workload in WORKLOADS:
        r = results[workload]
        report.targets.append(Target(f"dead-letter rate, {workload}",
                                     r["dead_letter_rate_pct"], 0.5, "<=", "%"))
    report.targets.append(Target("invariant violations (both workloads)",
                                 sum(violations(c) for c in checks.values()), 0, "<="))
    if uniform16:
        for workload in WORKLOADS:
            share = results[workload]["accepted_per_s"] / uniform16
            report.targets.append(Target(f"goodput / uniform 16-writer, {workload}",
                                         round(share, 2), 0.5, ">="))
    else:
        report.notes.append("goodput not compared: run the throughput benchmark in the same "
                            "invocation for the uniform 16-writer figure")
    return report
