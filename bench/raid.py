"""7. A raid through the real bot process: 10,002 joins in 61.5 s, 4 gateway events each.

The bot is `python -m bot run` (DATABASE_URL: the bench database, or see bench/botproc.py
for BENCH_RAID_DATABASE_URL / BENCH_PGBOUNCER=1; the HTTP API on, so /metrics and the web
app's writes reach it), against the sandbox Discord running in a process of its own
(bench/sandbox_host.py, so that the load generator does not compete with the measuring
code). Two guilds (one per shard of 2), each set up with a log channel (mirror level
dead_letters) and a verified role; joins alternate between them. Each member joins
(pending), then gets member updates "started onboarding" at +0.5 s, "completed onboarding" at
+1 s and pending -> false at +1.5 s. During the raid the web app sends 1,000 writes through
the bot's HTTP API (request_verification then verify for every 20th member, at a random
moment 1.6-4 s after its join; one attempt each, answers counted by status and code) and
staff run 40 slash commands (reported by bench/interactions.py).

Measured: ledger rows against the 4-5 bot rows each member implies (start_onboarding is
skipped when both onboarding flags are already set when the sync reads); lost events (an
event whose implied state was never reached); members not in the state Discord shows
(domain.member_sync.catch_up of their stored state and final flags is not empty; a member the
web app moved on to verification is in state); dead letters by reason code; event -> commit
latency (the sandbox's emission time of an event against the created_at of the first ledger
row reaching the state it implies; one machine clock); the backlog (events emitted and not
committed, from those two times, per second; the bot's ingest gauges too when it exports
them); time from the raid's last event until the last commit; peak RSS and CPU seconds of
the bot(s), the sandbox and PostgreSQL; peak database connections.

Run once with one bot process and once with two shard processes. With one process the join
rate is then stepped (100 .. 500 joins/s, fresh members, 15 s each, waiting for the backlog
to drain between steps) until a step's p99 exceeds 1 s; last, a step at the top rate checks
that the sandbox itself keeps up (its scheduler lateness and CPU), whatever the bot does.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import psutil

from bench.botproc import (
    API_TOKEN,
    BotProcess,
    SandboxProcess,
    bot_database_url,
    remove,
    start_bot,
    stop_all,
    workdir,
)
from bench.common import Context, Report, Target
from bench.monitor import OPTIONAL_GAUGES, Monitor
from bench.raid_outcome import dead_letters, drain, outcome

NAME = "raid"
TITLE = "A raid through the real bot process (joins + 3 member updates each)"
LOAD_REASONS = ("retries_exhausted", "unexpected_error")
P99_LIMIT = 1.0


@dataclass(frozen=True)
class Scale:
    joins: int
    seconds: float
    webapp_every: int  # every n-th member gets the web app's two writes
    commands: int
    steps: tuple[int, ...]  # joins/s
    step_seconds: float
    drain_cap: float  # how long the backlog may take to drain before events count as lost


FULL = Scale(10_002, 61.5, 20, 40, (100, 200, 300, 400, 500), 15.0, 120.0)
QUICK = Scale(400, 4.0, 20, 6, (100, 300), 3.0, 20.0)


def scale_of(ctx: Context) -> Scale:
    return QUICK if ctx.quick else FULL


# -- set-up ----------------------------------------------------------------------------------

async def set_up_guilds(ctx: Context, guilds: list[dict[str, Any]]) -> None:
    """Guild settings as `/lifeline setup` writes them: log channel, verified role."""
    conn = await ctx.connect()
    try:
        for g in guilds:
            await conn.execute(
                "INSERT INTO guild_settings (guild_id, log_channel_id, verified_role_id,"
                " mirror_level) VALUES ($1, $2, $3, 'dead_letters')",
                g["id"], g["log_channel"], g["verified_role"])
    finally:
        await conn.close()


async def wait_rows(ctx: Context, at_least: int, timeout: float) -> None:  # noqa: ASYNC109
    """Until the ledger holds `at_least` rows (the start-up reconcile's joins)."""
    conn = await ctx.connect()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await conn.fetchval("SELECT count(*) FROM member_transitions") >= at_least:
                return
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


@dataclass
class Setup:
    host: SandboxProcess
    bots: list[BotProcess]
    guilds: list[dict[str, Any]]
    database: str


async def start(ctx: Context, database: tuple[str, str, dict[str, str]], processes: int,
                work: Any) -> Setup:
    await ctx.reset()
    host = await SandboxProcess.start(work, 2)
    try:
        guilds = (await host.call("setup", guilds=2))["guilds"]
        await set_up_guilds(ctx, guilds)
        url, how, extra = database
        if processes == 1:
            bots = [await start_bot("bot", url, host, work, extra=extra)]
        else:
            bots = list(await asyncio.gather(*(
                start_bot(f"bot-shard-{s}", url, host, work, shards=(s, processes), extra=extra)
                for s in range(processes))))
        await wait_rows(ctx, len(guilds), 20)  # each guild's owner joined at start-up
    except BaseException:
        await host.stop()
        raise
    return Setup(host, bots, guilds, how)


# -- one run ---------------------------------------------------------------------------------

def raid_request(setup: Setup, joins: int, seconds: float, webapp_every: int | None,
                 commands: int) -> dict[str, Any]:
    request: dict[str, Any] = {"guilds": [g["id"] for g in setup.guilds], "joins": joins,
                               "seconds": seconds, "commands": {"count": commands}}
    if webapp_every:
        request["webapp"] = {"every": webapp_every, "window": [1.6, 4.0], "token": API_TOKEN,
                             "api_urls": [b.api_url for b in setup.bots]}
    return request


def join_rate(members: list[list[Any]]) -> float:
    """Joins per second as emitted: between the first and the last join."""
    joins = [m[2] for m in members]
    span = max(joins, default=0.0) - min(joins, default=0.0)
    return round((len(joins) - 1) / span, 1) if span > 0 else 0.0


def webapp_answers(result: dict[str, Any]) -> dict[str, int]:
    counted = Counter(f"{op} -> {status}{' ' + code if code else ''}"
                      for _, _, op, status, code, _, _ in result["webapp"])
    return dict(sorted(counted.items()))


async def raid_once(ctx: Context, scale: Scale, database: tuple[str, str, dict[str, str]],
                    processes: int, steps: bool) -> dict[str, Any]:
    """One raid with `processes` bot processes (and the stepped rates if `steps`)."""
    work = workdir(ctx, "raid-")
    try:
        setup = await start(ctx, database, processes, work)
        try:
            return await measure(ctx, scale, setup, steps)
        finally:
            await stop_all(setup.bots)
            await setup.host.stop()
    finally:
        remove(work)


async def measure(ctx: Context, scale: Scale, setup: Setup, steps: bool) -> dict[str, Any]:
    pids = {b.name: b.pid for b in setup.bots}
    pids["sandbox"] = setup.host.pid
    async with Monitor(ctx, pids, [b.api_url for b in setup.bots]) as monitor:
        result = await setup.host.call("raid", timeout=scale.seconds + 120, **raid_request(
            setup, scale.joins, scale.seconds, scale.webapp_every, scale.commands))
        waited = await drain(ctx, result["members"], scale.drain_cap)
        await asyncio.sleep(1.0)  # one more monitor sample after the drain
    analysis = await outcome(ctx, result["members"])
    guild_ids = [g["id"] for g in setup.guilds]
    figures: dict[str, Any] = {
        "processes": len(setup.bots), "bot_database": setup.database,
        **analysis.summary(),
        "achieved_join_rate": join_rate(result["members"]),
        "drain_waited_s": round(waited, 1),
        "dead_letters": dict(await dead_letters(ctx, guild_ids)),
        "webapp": webapp_answers(result),
        "sandbox_lateness_s": {k: round(v, 4) for k, v in result["lateness"].items()},
        "sandbox_queue_max": result["queue_max"],
        "usage": {name: u.as_dict() for name, u in monitor.usage.items()},
        "peak_db_connections": monitor.peak_connections(),
        "backlog": analysis.backlog(result["started"], analysis.last_commit
                                    or result["ended"]),
        "gauges_exported": sorted(monitor.metrics_seen),
        "gauges": {g: [(round(at - result["started"], 1), v)
                       for at, v in monitor.gauge_series(g)] for g in OPTIONAL_GAUGES},
        "bot_exits": {b.name: b.process.returncode for b in setup.bots},
        "bot_tracebacks": sum(b.count("Traceback") for b in setup.bots),
        "commands": result["commands"],
    }
    if steps:
        figures["steps"] = await step_rates(ctx, scale, setup)
    return figures


async def step_rates(ctx: Context, scale: Scale, setup: Setup) -> dict[str, Any]:
    """Fresh members at each rate until a step's p99 exceeds 1 s (or events are lost); then
    the top rate once more for the sandbox's own figures."""
    done: list[dict[str, Any]] = []
    best: int | None = None
    for rate in scale.steps:
        figures = await one_step(ctx, scale, setup, rate)
        done.append(figures)
        if figures["lost_total"] or figures["latency_p99_s"] > P99_LIMIT:
            break
        best = rate
    top = scale.steps[-1]
    probe = done[-1] if done[-1]["rate"] == top else await one_step(ctx, scale, setup, top)
    return {"steps": done, "highest_rate_p99_within_1s": best,
            "sandbox_at_top_rate": {k: probe[k] for k in (
                "rate", "achieved_join_rate", "sandbox_lateness_s", "sandbox_queue_max",
                "sandbox_cpu_cores")}}


async def one_step(ctx: Context, scale: Scale, setup: Setup, rate: int) -> dict[str, Any]:
    sandbox = psutil.Process(setup.host.pid)
    cpu_before = sum(sandbox.cpu_times()[:2])
    started = time.monotonic()
    result = await setup.host.call("raid", timeout=scale.step_seconds + 120, **raid_request(
        setup, int(rate * scale.step_seconds), scale.step_seconds, None, 0))
    cpu = sum(sandbox.cpu_times()[:2]) - cpu_before
    busy = time.monotonic() - started
    await drain(ctx, result["members"], scale.drain_cap)
    analysis = await outcome(ctx, result["members"])
    return {"rate": rate, **analysis.summary(),
            "achieved_join_rate": join_rate(result["members"]),
            "sandbox_lateness_s": {k: round(v, 4) for k, v in result["lateness"].items()},
            "sandbox_queue_max": result["queue_max"],
            "sandbox_cpu_cores": round(cpu / max(busy, 1e-9), 2)}


# -- the report ------------------------------------------------------------------------------

def load_dead_letters(figures: dict[str, Any]) -> int:
    return sum(n for label, n in figures["dead_letters"].items()
               if label.split(" ", 1)[0] in LOAD_REASONS)


def describe(report: Report, label: str, f: dict[str, Any], scale: Scale) -> None:
    members = scale.joins
    report.row(f"{label}: ledger rows (bot / web app)",
               f"{f['bot_rows']:,} / {f['api_rows']:,}; expected bot rows "
               f"{4 * members:,}-{5 * members:,} (4-5 per member; start_onboarding folded "
               f"for {f['collapsed_start_onboarding']:,})")
    report.row(f"{label}: lost events / not in state / no record",
               f"{f['lost_total']:,} {f['lost'] or ''} / {f['not_in_state']:,} / "
               f"{f['without_record']:,}")
    report.row(f"{label}: event -> commit p50 / p99 / max",
               f"{f['latency_p50_s']:.3f} / {f['latency_p99_s']:.3f} / "
               f"{f['latency_max_s']:.3f} s over {f['events']:,} events")
    peak = max((n for _, n in f["backlog"]), default=0)
    report.row(f"{label}: backlog peak / drained after last event",
               f"{peak:,} events / {f['drain_s']} s (waited {f['drain_waited_s']} s; "
               f"ingest gauges exported: {f['gauges_exported'] or 'none'})")
    report.row(f"{label}: dead letters", f"{f['dead_letters'] or 'none'}")
    report.row(f"{label}: web app answers", f"{f['webapp']}")
    report.row(f"{label}: usage (peak RSS MB, CPU s)",
               ", ".join(f"{n} {u['peak_rss_mb']:.0f} MB {u['cpu_s']:.1f} s"
                         for n, u in f["usage"].items())
               + f"; peak DB connections {f['peak_db_connections']}")
    report.row(f"{label}: sandbox kept up",
               f"join rate {f['achieved_join_rate']}/s, scheduler lateness "
               f"{f['sandbox_lateness_s']}, deepest frame queue {f['sandbox_queue_max']}")


def targets(report: Report, label: str, f: dict[str, Any]) -> None:
    report.targets += [
        Target(f"{label}: lost events", f["lost_total"], 0, "<="),
        Target(f"{label}: members not in Discord's state (stuck + no record)",
               f["not_in_state"] + f["without_record"], 0, "<="),
        Target(f"{label}: dead letters caused by load", load_dead_letters(f), 0, "<="),
        Target(f"{label}: event -> commit p99", f["latency_p99_s"], P99_LIMIT, "<=", "s"),
        Target(f"{label}: backlog drained after the last event", f["drain_s"], 10, "<=", "s"),
    ]


def describe_steps(report: Report, steps: dict[str, Any]) -> None:
    for s in steps["steps"]:
        report.row(f"step {s['rate']} joins/s",
                   f"p50 / p99 / max {s['latency_p50_s']} / {s['latency_p99_s']} / "
                   f"{s['latency_max_s']} s, lost {s['lost_total']}, drained after "
                   f"{s['drain_s']} s, achieved {s['achieved_join_rate']}/s")
    probe = steps["sandbox_at_top_rate"]
    report.row("sandbox alone at the top rate",
               f"{probe['rate']} joins/s asked, {probe['achieved_join_rate']}/s emitted, "
               f"lateness {probe['sandbox_lateness_s']}, queue {probe['sandbox_queue_max']}, "
               f"{probe['sandbox_cpu_cores']} cores")
    report.targets.append(Target("highest sustained join rate with p99 <= 1 s (4 events/join)",
                                 steps["highest_rate_p99_within_1s"] or 0, 300, ">=",
                                 "joins/s"))


async def run(ctx: Context) -> Report:
    scale = scale_of(ctx)
    report = ctx.report(NAME, TITLE, {
        "joins": scale.joins, "seconds": scale.seconds,
        "join_rate": round(scale.joins / scale.seconds, 1),
        "updates_after_join_s": [0.5, 1.0, 1.5], "guilds": 2,
        "webapp_writes": 2 * math.ceil(scale.joins / scale.webapp_every),
        "staff_commands": scale.commands, "steps_joins_per_s": list(scale.steps),
        "step_seconds": scale.step_seconds, "drain_cap_s": scale.drain_cap,
        "sandbox": "its own process (bench/sandbox_host.py)"})
    async with bot_database_url(ctx) as database:
        report.params["bot_database"] = database[1]
        single = await raid_once(ctx, scale, database, 1, steps=True)
        sharded = await raid_once(ctx, scale, database, 2, steps=False)
    ctx.shared["raid_commands"] = {"1 process": single["commands"],
                                   "2 shard processes": sharded["commands"]}
    for label, figures in (("1 process", single), ("2 shards", sharded)):
        describe(report, label, figures, scale)
        targets(report, label, figures)
    describe_steps(report, single["steps"])
    for figures in (single, sharded):
        figures.pop("commands")
    report.metrics = {"1 process": single, "2 shard processes": sharded}
    report.notes.append("Backlog = events emitted and not yet committed (from the sandbox's "
                        "emission times and the ledger's created_at); the bot's ingest "
                        "gauges are sampled from /metrics when it exports them.")
    return report
