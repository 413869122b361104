"""1. Transition throughput: TransitionService against a raw asyncpg baseline.

Both sides toggle members between verification_pending and verified (verify / reverify), so
every operation is valid, and both write real ledger rows. Which operation a writer sends
comes from a client-side map {member: (state, version)} that both sides keep up to date, as
a client that knows its members would; a member already being written is not picked again
until that write ends, so neither side meets conflicts it did not cause.

- Lifeline: `TransitionService.apply` (read, guard, CAS + ledger + outbox CTEs in one
  statement, tenacity retries, metrics), writers as asyncio tasks sharing one Database.
- Baseline: asyncpg, one connection per writer: BEGIN; UPDATE members ... WHERE state=$ AND
  version=$ RETURNING; INSERT INTO member_transitions ...; COMMIT, with the expected state and
  version from the client-side map (no read).

Each writer count runs Lifeline and baseline in A-B-B-A halves, so drift on a noisy machine
falls on both.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench.common import GUILD, Context, Report, Target, percentile, services
from bench.cpu import sample, usage
from bench.ledger import check_invariants, seed_members, violations
from domain.commands import TransitionCommand
from domain.errors import DomainError
from domain.lifecycle import Operation, Source, State
from domain.transitions import TransitionService

NAME = "throughput"
TITLE = "Transition throughput, uniform over 100,000 members"
WRITERS = (1, 4, 16)
TOGGLE = {State.VERIFICATION_PENDING: (Operation.VERIFY, State.VERIFIED),
          State.VERIFIED: (Operation.REVERIFY, State.VERIFICATION_PENDING)}

BASE_UPDATE = """
    UPDATE members SET state = $1::member_state, version = version + 1, updated_at = now()
    WHERE guild_id = $2 AND user_id = $3 AND state = $4::member_state AND version = $5
    RETURNING version"""
BASE_LEDGER = """
    INSERT INTO member_transitions (guild_id, user_id, version, operation, from_state,
                                    to_state, source, actor_id, reason, idempotency_key,
                                    correlation_id)
    VALUES ($1, $2, $3, $4::member_operation, $5::member_state, $6::member_state, 'api',
            NULL, NULL, $7, $8)"""


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu: list[dict[str, float | None]] = field(default_factory=list)


@dataclass
class Members:
    """The client-side map both sides pick from and keep current."""

    known: dict[int, tuple[State, int]]
    busy: set[int] = field(default_factory=set)

    def pick(self) -> int:
        count = len(self.known)
        while True:
            user = random.randint(1, count)
            if user not in self.busy:
                self.busy.add(user)
                return user


async def lifeline_writer(svc: TransitionService, members: Members, deadline: float,
                          tally: Tally) -> None:
    while time.perf_counter() < deadline:
        user = members.pick()
        state, _ = members.known[user]
        op, _ = TOGGLE[state]
        started = time.perf_counter()
        try:
            result = await svc.apply(TransitionCommand(
                guild_id=GUILD, user_id=user, operation=op, source=Source.API,
                idempotency_key=uuid.uuid4().hex))
            members.known[user] = (result.member.state, result.member.version)
            tally.ok += 1
            tally.latencies.append(time.perf_counter() - started)
        except DomainError:
            tally.failed += 1
        finally:
            members.busy.discard(user)


async def baseline_writer(conn: asyncpg.Connection, members: Members, deadline: float,
                          tally: Tally) -> None:
    while time.perf_counter() < deadline:
        user = members.pick()
        state, version = members.known[user]
        op, to = TOGGLE[state]
        started = time.perf_counter()
        try:
            async with conn.transaction():
                new_version = await conn.fetchval(BASE_UPDATE, to.value, GUILD, user,
                                                  state.value, version)
                if new_version is None:
                    raise LookupError("conflict")  # rolls the transaction back
                await conn.execute(BASE_LEDGER, GUILD, user, new_version, op.value,
                                   state.value, to.value, uuid.uuid4().hex, uuid.uuid4().hex)
            members.known[user] = (to, new_version)
            tally.ok += 1
            tally.latencies.append(time.perf_counter() - started)
        except LookupError:
            tally.failed += 1
        finally:
            members.busy.discard(user)


async def segment(ctx: Context, kind: str, writers: int, seconds: float,
                  svc: TransitionService, conns: list[asyncpg.Connection], members: Members,
                  tally: Tally) -> None:
    before = sample(ctx.pgdata)
    deadline = time.perf_counter() + seconds
    if kind == "lifeline":
        jobs = [lifeline_writer(svc, members, deadline, tally) for _ in range(writers)]
    else:
        jobs = [baseline_writer(conns[i], members, deadline, tally) for i in range(writers)]
    await asyncio.gather(*jobs)
    after = sample(ctx.pgdata)
    tally.seconds += after.wall - before.wall
    tally.cpu.append(usage(before, after))


def _summary(tally: Tally) -> dict[str, Any]:
    rate = tally.ok / tally.seconds if tally.seconds else 0.0
    client = [c["client_cores"] or 0.0 for c in tally.cpu]
    server = [c["server_cores"] for c in tally.cpu if c["server_cores"] is not None]
    return {"transitions_per_s": round(rate, 1), "accepted": tally.ok,
            "failed": tally.failed, "seconds": round(tally.seconds, 2),
            "latency_p50_ms": round(percentile(tally.latencies, 50) * 1000, 2),
            "latency_p95_ms": round(percentile(tally.latencies, 95) * 1000, 2),
            "client_cores": round(sum(client) / len(client), 2) if client else None,
            "server_cores": round(sum(server) / len(server), 2) if server else None,
            "client_cpu_us_per_transition": round(
                sum(client) / len(client) * 1e6 / rate, 1) if client and rate else None}


async def run(ctx: Context) -> Report:
    count = 10_000 if ctx.quick else 100_000
    seconds = 2.0 if ctx.quick else 10.0
    report = ctx.report(NAME, TITLE, {
        "members": count, "writers": list(WRITERS), "seconds_per_system_and_writers": seconds,
        "choice": "uniform", "operations": "verify <-> reverify toggle",
        "order": "A-B-B-A halves per writer count (Lifeline, baseline, baseline, Lifeline)",
        "lifeline": "TransitionService.apply, RetryPolicy(), Prometheus metrics, one Database "
                    "(pool_size = writers); the guild has no settings row (no mirror, no role "
                    "sync); then once more at the top writer count with the guild set up",
        "baseline": "asyncpg, one connection per writer, BEGIN; CAS UPDATE RETURNING; "
                    "ledger INSERT; COMMIT"})
    await ctx.reset()
    conn = await ctx.connect()
    try:
        t0 = time.perf_counter()
        known = await seed_members(conn, GUILD, count,
                                   (State.VERIFICATION_PENDING, State.VERIFIED))
        report.metrics["seed_seconds"] = round(time.perf_counter() - t0, 1)
    finally:
        await conn.close()
    members = Members(known)
    db = ctx.database(pool_size=max(WRITERS))
    svc = services(db).transitions
    conns = [await ctx.connect() for _ in range(max(WRITERS))]
    results: dict[int, dict[str, Any]] = {}
    try:
        for kind in ("lifeline", "baseline"):  # warm pools and statement caches
            await segment(ctx, kind, max(WRITERS), 0.5, svc, conns, members, Tally())
        for writers in WRITERS:
            tallies = {"lifeline": Tally(), "baseline": Tally()}
            for kind in ("lifeline", "baseline", "baseline", "lifeline"):
                await segment(ctx, kind, writers, seconds / 2, svc, conns, members,
                              tallies[kind])
            life, base = _summary(tallies["lifeline"]), _summary(tallies["baseline"])
            ratio = life["transitions_per_s"] / base["transitions_per_s"] \
                if base["transitions_per_s"] else 0.0
            results[writers] = {"lifeline": life, "baseline": base, "ratio": round(ratio, 3)}
            report.row(f"{writers:>2} writers: Lifeline / baseline",
                       f"{life['transitions_per_s']:,.0f} / {base['transitions_per_s']:,.0f} "
                       f"transitions/s = {ratio:.2f} (p95 {life['latency_p95_ms']} / "
                       f"{base['latency_p95_ms']} ms)")
        # The same with the guild set up (verified role): each verify/reverify also queues a
        # role-sync outbox row in its statement. Not comparable with the baseline, which
        # writes no outbox row; shown so the figure above is not read as the set-up case.
        await conns[0].execute(
            "INSERT INTO guild_settings (guild_id, log_channel_id, verified_role_id) "
            "VALUES ($1, $2, $3)", GUILD, GUILD + 1, GUILD + 2)
        top = max(WRITERS)
        set_up = Tally()
        await segment(ctx, "lifeline", top, seconds / 2, svc, conns, members, set_up)
        report.metrics["lifeline_guild_set_up"] = {"writers": top, **_summary(set_up)}
        report.row(f"{top:>2} writers, guild set up: Lifeline",
                   f"{_summary(set_up)['transitions_per_s']:,.0f} transitions/s, each with a "
                   "role-sync outbox row (no baseline equivalent)")
    finally:
        for c in conns:
            await c.close()
        await db.dispose()
    check_conn = await ctx.connect()
    try:
        check = await check_invariants(check_conn, GUILD)
    finally:
        await check_conn.close()
    ctx.shared["lifeline_uniform_16"] = results[max(WRITERS)]["lifeline"]["transitions_per_s"]
    report.metrics["by_writers"] = {str(k): v for k, v in results.items()}
    report.metrics["invariants"] = check
    report.row("ledger invariant violations", f"{violations(check)} "
               f"({check['ledger_rows']:,} ledger rows checked)")
    at_top = results[max(WRITERS)]
    report.targets.append(Target(f"Lifeline / baseline at {max(WRITERS)} writers",
                                 at_top["ratio"], 0.6, ">="))
    report.targets.append(Target("ledger invariant violations", violations(check), 0, "<="))
    return report
