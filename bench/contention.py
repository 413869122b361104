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

Goodput is compared with the uniform 16-writer figure measured around each workload in the
same benchmark (benchmark 1's writers, 100,000 members, 5 s before and after each workload:
U W1 U W2 U W3 U), so that drift of a shared machine falls on both sides of the ratio.

Afterwards the ledger invariants are checked for every hot member.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

from bench.common import GUILD, Context, Report, Target, services
from bench.cpu import sample, usage
from bench.ledger import check_invariants, seed_members, violations
from bench.throughput import TOGGLE, Members, Tally, segment
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
# Across processes the turns do not apply: the compare-and-set and the retries decide.
REPLICAS = "new key, 2 processes"
EVERY = (*WORKLOADS, REPLICAS)


@dataclass
class Outcomes:
    requests: int = 0
    applied: int = 0
    repeats: int = 0
    refused: int = 0  # the state changed between the client's read and apply's own read
    strict_conflicts: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    other: Counter[str] = field(default_factory=Counter)


class Known:
    """The client-side map of the hot members the writers share, kept current from the
    answers (a newer version wins), as benchmark 1's client keeps its map."""

    def __init__(self, members: dict[int, tuple[State, int]]) -> None:
        self.members = members

    def saw(self, user: int, state: State, version: int) -> None:
        if version > self.members[user][1]:
            self.members[user] = (state, version)


async def writer(svc: TransitionService, guild: int, workload: str, deadline: float,
                 out: Outcomes, known: Known) -> None:
    strict = workload == "strict"
    while time.perf_counter() < deadline:
        user = random.randint(1, HOT)
        state, version = known.members[user]
        op, _ = TOGGLE[state]
        key = f"{op.value}:{user}:{version}" if workload == "key from the read" \
            else uuid.uuid4().hex
        out.requests += 1
        try:
            result = await svc.apply(TransitionCommand(
                guild_id=guild, user_id=user, operation=op, source=Source.API,
                idempotency_key=key, expected_state=state if strict else None,
                expected_version=version if strict else None))
        except TransitionDeadLettered as exc:
            out.dead_letters[exc.reason_code] += 1
        except TransitionNotAllowed:
            out.refused += 1  # the answer that made the map current is on its way
        except StrictConflict as exc:
            out.strict_conflicts += 1
            if exc.current_state is not None and exc.current_version is not None:
                known.saw(user, State(exc.current_state), exc.current_version)
        except DomainError as exc:
            out.other[exc.code] += 1
        else:
            known.saw(user, result.member.state, result.member.version)
            if result.applied:
                out.applied += 1
            else:
                out.repeats += 1


async def run_workload(ctx: Context, guild: int, workload: str, seconds: float,
                       replicas: int = 1) -> dict[str, Any]:
    """`replicas` TransitionServices (each with its own turns, as separate processes have)
    share the writers; they share one pool here only to keep the machine's load alike."""
    conn = await ctx.connect()
    try:
        known = Known(await seed_members(conn, guild, HOT,
                                         (State.VERIFICATION_PENDING, State.VERIFIED)))
    finally:
        await conn.close()
    db = ctx.database(pool_size=WRITERS)
    svcs = [services(db) for _ in range(replicas)]
    mode = "new key per request" if workload == REPLICAS else workload
    out = Outcomes()
    all_metrics = [cast(CountingMetrics, s.metrics) for s in svcs]

    def total(counter: str) -> int:
        return sum(sum(getattr(m, counter).values()) for m in all_metrics)

    try:
        # Warm-up (connections, prepared statements), not counted.
        warm = time.perf_counter() + 0.5
        await asyncio.gather(*(writer(svcs[w % replicas].transitions, guild, mode, warm,
                                      Outcomes(), known) for w in range(WRITERS)))
        conflicts0, retries0 = total("conflicts"), total("retries")
        before = sample(ctx.pgdata)
        started = before.wall
        await asyncio.gather(*(writer(svcs[w % replicas].transitions, guild, mode,
                                      started + seconds, out, known)
                               for w in range(WRITERS)))
        after = sample(ctx.pgdata)
        elapsed = after.wall - started
    finally:
        await db.dispose()
    conflicts = total("conflicts") - conflicts0
    retries = total("retries") - retries0
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
    conn = await ctx.connect()
    try:
        members = Members(await seed_members(conn, GUILD, 10_000 if ctx.quick else 100_000,
                                             (State.VERIFICATION_PENDING, State.VERIFIED)))
    finally:
        await conn.close()
    reference_db = ctx.database(pool_size=16)
    reference_svc = services(reference_db).transitions

    async def uniform() -> float:
        tally = Tally()
        await segment(ctx, "lifeline", 16, seconds / 2, reference_svc, [], members, tally)
        return round(tally.ok / tally.seconds, 1)

    results: dict[str, dict[str, Any]] = {}
    checks: dict[str, dict[str, int]] = {}
    try:
        await segment(ctx, "lifeline", 16, 0.5, reference_svc, [], members, Tally())  # warm
        references = [await uniform()]
        for i, workload in enumerate(EVERY):
            results[workload] = await run_workload(ctx, GUILD + 1 + i, workload, seconds,
                                                   replicas=2 if workload == REPLICAS else 1)
            references.append(await uniform())
    finally:
        await reference_db.dispose()
    for i, workload in enumerate(EVERY):
        guild = GUILD + 1 + i
        uniform16 = (references[i] + references[i + 1]) / 2
        results[workload]["uniform_16_around"] = [references[i], references[i + 1]]
        results[workload]["goodput_ratio"] = round(
            results[workload]["accepted_per_s"] / uniform16, 3)
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
        report.row(f"{workload}: goodput / uniform 16-writer",
                   f"{r['goodput_ratio']:.2f} (uniform {uniform16:,.0f}/s: "
                   f"{references[i]:,.0f} before, {references[i + 1]:,.0f} after)")
        report.row(f"{workload}: requests answered/s",
                   f"{r['requests_per_s']:,.0f} ({r['requests_per_accepted']} per accepted "
                   f"transition; {r['requests_per_s'] / uniform16:.2f} x the uniform "
                   f"16-writer transitions/s)")
        report.row(f"{workload}: conflicts, retries/accepted",
                   f"{r['conflicts']:,}, {r['retries_per_accepted']}")
        report.row(f"{workload}: dead letters", f"{r['dead_letter_total']:,} = "
                   f"{r['dead_letter_rate_pct']}% of requests {r['dead_letters']}")
        report.row(f"{workload}: invariant violations", f"{violations(checks[workload])} "
                   f"({checks[workload]['ledger_rows']:,} ledger rows)")
    report.metrics = {"by_workload": results, "invariants": checks,
                      "uniform_16_writers_around_workloads": references,
                      "uniform_16_writers_benchmark_1": ctx.shared.get("lifeline_uniform_16")}
    for workload in EVERY:
        r = results[workload]
        report.targets.append(Target(f"dead-letter rate, {workload}",
                                     r["dead_letter_rate_pct"], 0.5, "<=", "%"))
    report.targets.append(Target("invariant violations (every workload)",
                                 sum(violations(c) for c in checks.values()), 0, "<="))
    for workload in EVERY:
        report.targets.append(Target(f"goodput / uniform 16-writer, {workload}",
                                     round(results[workload]["goodput_ratio"], 2), 0.5, ">="))
    return report
