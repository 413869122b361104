"""9. Reconcile of a 100,000-member guild by the real bot process.

The sandbox (its own process, bench/sandbox_host.py) delivers the guild as Discord does: a
GUILD_CREATE without members (larger than large_threshold), then GUILD_MEMBERS_CHUNK pages
of 1,000 on the bot's op 8 request. The database is seeded directly (bench set-up, not the
product's path) with every member in the state its flags imply, with a consistent ledger.

- (a) unchanged: the bot is spawned on that database; measured from the spawn and from its
  gateway connection (the sandbox accepting its IDENTIFY) until reconcile is done.
- (b) 10% changed while the bot was offline: 5% of the members left and 5% went from
  "joined" to onboarded and screened (3 transitions each), then the bot is spawned: time
  until every member is in the state Discord shows (counts by state polled once a second),
  and statements per changed member: the delta of pg_stat_database.xact_commit (each of the
  bot's statements is its own transaction) minus the benchmark's own statements and the
  bot's idle rate (measured after), divided by changed members.
- (c) 5 re-identifies within a minute (op 9, session not resumable: the bot identifies again,
  is sent the guild again and asks for its members again), on the bot of (b): reconcile time
  of each.

"Done" is the latest of: the bot's line "reconciled guild <id>" (when it logs one), its
ingest backlog gauge back at 0 (when it exports one), and a sentinel member committed in the
state Discord shows. The sentinel is one of the last members of the guild (so the last one a
member-by-member reconcile reaches), changed while no session could receive the change: only
a reconcile can see it. Case (a) therefore has one changed member out of 100,000.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg

from bench.botproc import (
    BotProcess,
    SandboxProcess,
    bot_database_url,
    remove,
    start_bot,
    workdir,
)
from bench.common import Context, Report, Target
from bench.monitor import Monitor, scrape
from bench.raid import set_up_guilds
from bench.sandbox_host import COMPLETED, STARTED

NAME = "reconcile"
TITLE = "Reconcile of a 100,000-member guild (unchanged, 10% changed, re-identifies)"
RECONCILED = "reconciled guild"
ONBOARDED = STARTED | COMPLETED
SENTINELS = 8
SEED_PATH = (("join", None, "joined"), ("complete_onboarding", "joined", "onboarding_completed"),
             ("mark_role_eligible", "onboarding_completed", "role_eligible"),
             ("accept_rules", "role_eligible", "rules_accepted"))


@dataclass(frozen=True)
class Scale:
    members: int
    changed: int  # half leave, half onboard
    reidentifies: int
    spacing: float  # seconds between re-identifies (at least)
    cap: float  # the longest wait for one reconcile


FULL = Scale(100_000, 10_000, 5, 12.0, 120.0)
QUICK = Scale(5_000, 500, 2, 3.0, 60.0)


@dataclass
class Guild:
    id: int
    owner: int
    stable: list[int]  # onboarded and screened: rules_accepted
    joiners: list[int]  # joined, nothing else yet
    sentinels: list[int]  # joined; the last members of the guild
    created_s: float = 0.0


async def build_guild(ctx: Context, host: SandboxProcess, scale: Scale) -> Guild:
    made = (await host.call("setup", guilds=1))["guilds"][0]
    await set_up_guilds(ctx, [made])
    stable = await host.call("members", guild=made["id"], count=scale.members
                             - scale.changed // 2 - SENTINELS, flags=ONBOARDED, pending=False)
    joiners = await host.call("members", guild=made["id"], count=scale.changed // 2)
    sentinels = await host.call("members", guild=made["id"], count=SENTINELS)
    guild = Guild(made["id"], made["owner_id"], stable["users"], joiners["users"],
                  sentinels["users"])
    guild.created_s = stable["seconds"] + joiners["seconds"] + sentinels["seconds"]
    return guild


async def seed(ctx: Context, guild: Guild) -> float:
    """Members rows and their ledger as the flags imply; returns the seconds it took."""
    started = time.perf_counter()
    conn = await ctx.connect()
    try:
        async with conn.transaction():
            await insert(conn, guild.id, guild.stable, len(SEED_PATH))
            await insert(conn, guild.id, [guild.owner, *guild.joiners, *guild.sentinels], 1)
        await conn.execute("ANALYZE members, member_transitions")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def insert(conn: asyncpg.Connection, guild_id: int, users: list[int], steps: int) -> None:
    path = SEED_PATH[:steps]
    await conn.execute(
        "INSERT INTO members (guild_id, user_id, state, version)"
        " SELECT $1, u, $3::member_state, $4 FROM unnest($2::bigint[]) AS u",
        guild_id, users, path[-1][2], steps)
    await conn.execute(
        "INSERT INTO member_transitions (guild_id, user_id, version, operation, from_state,"
        " to_state, source, idempotency_key, correlation_id)"
        " SELECT $1, u, p.v, p.op::member_operation, p.fr::member_state, p.t::member_state,"
        " 'bot', 'seed:' || p.op || ':' || u, 'bench-seed'"
        " FROM unnest($2::bigint[]) AS u"
        " CROSS JOIN unnest($3::int[], $4::text[], $5::text[], $6::text[]) AS p(v, op, fr, t)",
        guild_id, users, list(range(1, steps + 1)), [p[0] for p in path],
        [p[1] for p in path], [p[2] for p in path])


@dataclass
class Watch:
    """Polls (every 0.2 s) what says a reconcile is done; counts its own statements."""

    conn: asyncpg.Connection
    host: SandboxProcess
    guild: Guild
    statements: int = 0
    marks: dict[str, float] = field(default_factory=dict)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self.statements += 1
        return await self.conn.fetchval(sql, *args)

    async def sentinel_at(self, user: int) -> float | None:
        value = await self.fetchval(
            "SELECT extract(epoch FROM created_at)::float8 FROM member_transitions"
            " WHERE guild_id = $1 AND user_id = $2 AND to_state = 'rules_accepted'",
            self.guild.id, user)
        return None if value is None else float(value)

    async def identified(self, since: float) -> float | None:
        """When the sandbox accepted the first IDENTIFY at or after `since`."""
        sessions = await self.host.call("sessions")
        return min((t for t in sessions["identified_at"] if t >= since), default=None)

    async def states(self) -> dict[str, int]:
        self.statements += 1
        rows = await self.conn.fetch("SELECT state::text AS s, count(*) AS n FROM members"
                                     " WHERE guild_id = $1 GROUP BY 1", self.guild.id)
        return {r["s"]: int(r["n"]) for r in rows}

    async def until_done(self, bot: BotProcess, since: float, sentinel: int, cap: float,
                         expected: dict[str, int] | None = None) -> dict[str, float | None]:
        """Times (time.time()) of: the IDENTIFY accepted by the sandbox, the reconciled
        line, the sentinel's commit, the backlog gauge at 0 after that line, every member in
        state (`expected` counts by state), and `done`, the latest of those that apply."""
        found: dict[str, float | None] = {"connected": None, "reconciled_line": None,
                                          "sentinel": None, "backlog_zero": None,
                                          "all_in_state": None, "done": None}
        deadline = time.monotonic() + cap
        last_states = 0.0
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if found["connected"] is None:
                    found["connected"] = await self.identified(since)
                if found["reconciled_line"] is None \
                        and (hit := bot.find(RECONCILED, since)) is not None:
                    found["reconciled_line"] = hit[0]
                if found["sentinel"] is None:
                    found["sentinel"] = await self.sentinel_at(sentinel)
                if found["reconciled_line"] is not None and found["backlog_zero"] is None:
                    gauges = await scrape(http, bot.api_url)
                    if gauges.get("lifeline_ingest_backlog_events", 0.0) == 0.0:
                        found["backlog_zero"] = time.time()
                if expected is not None and found["all_in_state"] is None \
                        and time.monotonic() - last_states >= 1.0:
                    last_states = time.monotonic()
                    counts = await self.states()
                    if all(counts.get(s, 0) == n for s, n in expected.items()):
                        found["all_in_state"] = time.time()
                if done_at(found, expected is not None) is not None:
                    break
                await asyncio.sleep(0.2)
        found["done"] = done_at(found, expected is not None)
        return found


def done_at(found: dict[str, float | None], need_states: bool) -> float | None:
    needed = ["sentinel"] + (["all_in_state"] if need_states else [])
    if found["reconciled_line"] is not None:
        needed += ["reconciled_line", "backlog_zero"]
    times = [found[k] for k in needed]
    return None if any(t is None for t in times) else max(t for t in times if t is not None)


def since(start: float, at: float | None) -> float | None:
    return None if at is None else round(at - start, 2)


async def xact_commit(conn: asyncpg.Connection) -> int:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return int(await conn.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"))


async def case_unchanged(ctx: Context, host: SandboxProcess, guild: Guild, scale: Scale,
                         database: tuple[str, str, dict[str, str]], work: Any,
                         watch: Watch) -> dict[str, Any]:
    """(a): one sentinel changed, the bot spawned, until reconcile is done; then stopped."""
    sentinel = guild.sentinels[0]
    await host.call("alter", guild=guild.id, users=[sentinel], flags=ONBOARDED, pending=False)
    url, _, extra = database
    bot = await start_bot("bot-a", url, host, work, wait=False, extra=extra)
    try:
        async with Monitor(ctx, {"bot": bot.pid}, [bot.api_url]) as monitor:
            found = await watch.until_done(bot, bot.spawned, sentinel, scale.cap)
        return {"from_spawn_s": since(bot.spawned, found["done"]),
                "from_connect_s": None if found["connected"] is None
                else since(found["connected"], found["done"]),
                "marks_s": {k: since(bot.spawned, v) for k, v in found.items()},
                "bot_peak_rss_mb": monitor.usage["bot"].as_dict()["peak_rss_mb"],
                "bot_cpu_s": monitor.usage["bot"].as_dict()["cpu_s"],
                "reconciled_lines": [line for _, line in bot.lines if RECONCILED in line]}
    finally:
        await bot.stop()


async def case_changed(ctx: Context, host: SandboxProcess, guild: Guild, scale: Scale,
                       database: tuple[str, str, dict[str, str]], work: Any,
                       watch: Watch) -> tuple[dict[str, Any], BotProcess, Monitor]:
    """(b): 10% changed while the bot was offline; the bot is left running for (c)."""
    leavers = guild.stable[: scale.changed // 2]
    sentinel = guild.sentinels[1]
    await host.call("alter", guild=guild.id, users=[*guild.joiners, sentinel],
                    flags=ONBOARDED, pending=False, leave=leavers)
    expected = {"rules_accepted": len(guild.stable) - len(leavers) + len(guild.joiners) + 2,
                "left_guild": len(leavers), "joined": 1 + SENTINELS - 2}
    before = await xact_commit(watch.conn)
    watch.statements = 0
    url, _, extra = database
    bot = await start_bot("bot-b", url, host, work, wait=False, extra=extra)
    monitor = Monitor(ctx, {"bot": bot.pid}, [bot.api_url])
    await monitor.__aenter__()
    found = await watch.until_done(bot, bot.spawned, sentinel, scale.cap * 1.5, expected)
    settle = 11.0  # idle backends report their statistics at most 10 s late
    await asyncio.sleep(settle)
    after = await xact_commit(watch.conn)
    await asyncio.sleep(5.0)
    idle_rate = (await xact_commit(watch.conn) - after) / 5.0
    own = watch.statements + 2  # the polls, and the snapshot reads between the samples
    changed = len(leavers) + len(guild.joiners)
    statements = after - before - own - idle_rate * settle
    return ({"from_spawn_s": since(bot.spawned, found["done"]),
             "from_connect_s": None if found["connected"] is None
             else since(found["connected"], found["done"]),
             "marks_s": {k: since(bot.spawned, v) for k, v in found.items()},
             "changed_members": changed, "expected_transitions": len(leavers)
             + 3 * len(guild.joiners), "xact_commit_delta": after - before,
             "own_statements": own, "bot_idle_statements_per_s": round(idle_rate, 2),
             "statements_per_changed_member": round(statements / changed, 3)},
            bot, monitor)


async def case_reidentify(host: SandboxProcess, guild: Guild, scale: Scale, bot: BotProcess,
                          watch: Watch) -> list[dict[str, Any]]:
    """(c): op 9 then a sentinel changed, `reidentifies` times, `spacing` apart at least."""
    results = []
    for i in range(scale.reidentifies):
        began = time.monotonic()
        sentinel = guild.sentinels[2 + i]
        sent = await host.call("reidentify", alter={"guild": guild.id, "users": [sentinel],
                                                    "flags": ONBOARDED, "pending": False})
        found = await watch.until_done(bot, sent["at"], sentinel, scale.cap)
        results.append({"reconcile_s": since(sent["at"], found["done"]),
                        "from_identify_s": None if found["connected"] is None
                        else since(found["connected"], found["done"]),
                        "marks_s": {k: since(sent["at"], v) for k, v in found.items()}})
        await asyncio.sleep(max(0.0, scale.spacing - (time.monotonic() - began)))
    return results


async def run(ctx: Context) -> Report:
    scale = QUICK if ctx.quick else FULL
    report = ctx.report(NAME, TITLE, {
        "members": scale.members, "changed": scale.changed, "reidentifies": scale.reidentifies,
        "reidentify_spacing_s": scale.spacing, "chunk_size": 1000,
        "sandbox": "its own process (bench/sandbox_host.py)"})
    await ctx.reset()
    work = workdir(ctx, "rec-")
    host = await SandboxProcess.start(work, 1)
    conn = await ctx.connect()
    try:
        guild = await build_guild(ctx, host, scale)
        seeded = await seed(ctx, guild)
        watch = Watch(conn, host, guild)
        async with bot_database_url(ctx) as database:
            report.params["bot_database"] = database[1]
            unchanged = await case_unchanged(ctx, host, guild, scale, database, work, watch)
            changed, bot, monitor = await case_changed(ctx, host, guild, scale, database, work,
                                                       watch)
            try:
                again = await case_reidentify(host, guild, scale, bot, watch)
            finally:
                await monitor.__aexit__(None, None, None)
                await bot.stop()
    finally:
        await conn.close()
        await host.stop()
        remove(work)
    peak = max(unchanged["bot_peak_rss_mb"], monitor.usage["bot"].peak_rss_mb)
    report.metrics = {"sandbox_members_created_s": round(guild.created_s, 2),
                      "seeded_s": round(seeded, 2), "unchanged": unchanged, "changed": changed,
                      "reidentifies": again, "bot_peak_rss_mb": round(peak, 1)}
    describe(report, report.metrics, scale)
    return report


def describe(report: Report, m: dict[str, Any], scale: Scale) -> None:
    a, b, c = m["unchanged"], m["changed"], m["reidentifies"]
    report.row("set-up", f"{scale.members:,} members made in the sandbox in "
               f"{m['sandbox_members_created_s']} s, seeded in {m['seeded_s']} s")
    report.row("(a) unchanged: done after", f"{a['from_spawn_s']} s from spawn, "
               f"{a['from_connect_s']} s from gateway connect; marks {a['marks_s']}")
    report.row("(b) 10% changed: every member in state after",
               f"{b['from_spawn_s']} s from spawn, {b['from_connect_s']} s from connect; "
               f"marks {b['marks_s']}")
    report.row("(b) statements per changed member",
               f"{b['statements_per_changed_member']} (xact_commit +{b['xact_commit_delta']:,}"
               f", own {b['own_statements']}, bot idle {b['bot_idle_statements_per_s']}/s, "
               f"{b['changed_members']:,} members, {b['expected_transitions']:,} transitions)")
    report.row("(c) re-identify reconcile times from op 9",
               ", ".join(str(r["reconcile_s"]) for r in c) + " s (discord.py waits 5 s "
               "before it identifies again)")
    report.row("(c) ... from the new IDENTIFY",
               ", ".join(str(r["from_identify_s"]) for r in c) + " s")
    report.row("bot peak RSS", f"{m['bot_peak_rss_mb']:.0f} MB (issue's baseline 315-417 MB)")
    report.targets += [
        Target("(a) unchanged: reconcile done from spawn", a["from_spawn_s"], 10, "<=", "s"),
        Target("(b) 10% changed: every member in state from spawn", b["from_spawn_s"], 15,
               "<=", "s"),
        Target("(b) statements per changed member", b["statements_per_changed_member"], 0.1,
               "<="),
    ]
