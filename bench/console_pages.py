"""10. The staff console's pages at scale: server time of the dead-letter list and the
overview over 1,000,000 dead letters (100,000 with --quick), loaded as `dlq_queries` loads
them (one big guild with 30% of them, 99 others), through the real app (FastAPI, Jinja2,
the services) in process, with a logged-in session; who is staff is answered "yes" (the
staff check is a cached dictionary lookup in production, not what is measured here)."""

from __future__ import annotations

import time

import httpx
from pydantic import SecretStr

from bench.common import Context, Report, Target, percentile
from bench.dlq_queries import BIG, ERRORS, LOAD, OPS, REASONS, TYPICAL, signature_number
from bot.api.app import create_app
from bot.console.security import SESSION_COOKIE
from bot.console.staff import StaffGuild
from bot.container import Container
from bot.settings import Settings
from bot.wiring import build_services
from domain.console_sessions import ConsoleSessions

NAME = "console_pages"
TITLE = "Console pages at scale (dead-letter list, overview)"
STAFF = 1_200_000_000_000_000_001


class EveryoneIsStaff:
    async def staff_guilds(self, user_id: int) -> list[StaffGuild]:
        return [StaffGuild(BIG, "big"), StaffGuild(TYPICAL, "typical")]

    async def is_staff(self, user_id: int, guild_id: int, *, fresh: bool = False) -> bool:
        return True


async def run(ctx: Context) -> Report:
    total = 100_000 if ctx.quick else 1_000_000
    runs = 15 if ctx.quick else 60
    report = ctx.report(NAME, TITLE, {"dead_letters": total, "guilds": 100,
                                      "runs_per_page": runs, "page_size": 25})
    await ctx.reset()
    conn = await ctx.connect()
    try:
        await conn.execute("SELECT setseed(0.42)")
        await conn.execute(LOAD, total, BIG, OPS, REASONS, ERRORS)
        await conn.execute("VACUUM (ANALYZE) dead_letters, dead_letter_counts")
        for guild in (BIG, TYPICAL):
            await conn.execute("INSERT INTO guild_settings (guild_id) VALUES ($1)", guild)
    finally:
        await conn.close()
    db = ctx.database(pool_size=4)
    settings = Settings(_env_file=None, api_token=SecretStr("b" * 32),  # type: ignore[call-arg]
                        discord_client_id="1", discord_client_secret=SecretStr("bench"),
                        console_session_secret=SecretStr("c" * 32),
                        console_url="http://bench.test")
    services = build_services(settings, db)
    container = Container(settings, db, services)
    started = time.perf_counter()
    await services.overview.refresh()
    report.metrics["overview_refresh_seconds"] = round(time.perf_counter() - started, 2)
    session = await ConsoleSessions(services.stores.console_sessions).login(STAFF, "bench")
    app = create_app(container, console_staff=EveryoneIsStaff())
    transport = httpx.ASGITransport(app=app)
    pages = {
        "dead letters, big guild": f"/console/g/{BIG}/dead-letters",
        "dead letters, big guild, one signature":
            f"/console/g/{BIG}/dead-letters?signature={signature_number(20)}",
        "dead letters, big guild, oldest first": f"/console/g/{BIG}/dead-letters?order=oldest",
        "dead letters, typical guild": f"/console/g/{TYPICAL}/dead-letters",
        "overview, big guild": f"/console/g/{BIG}/overview",
        "overview, typical guild": f"/console/g/{TYPICAL}/overview",
    }
    timings: dict[str, dict[str, float]] = {}
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench.test",
                                     cookies={SESSION_COOKIE: session.cookie_value}) as http:
            for label, path in pages.items():
                # The first request of a page compiles its template and warms the pool:
                # reported apart, not in the steady state's percentiles.
                t0 = time.perf_counter()
                assert (await http.get(path)).status_code == 200, path
                first = round((time.perf_counter() - t0) * 1000, 2)
                samples = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    answer = await http.get(path)
                    samples.append((time.perf_counter() - t0) * 1000)
                    assert answer.status_code == 200, (path, answer.status_code)
                timings[label] = {"p50_ms": round(percentile(samples, 50), 2),
                                  "p95_ms": round(percentile(samples, 95), 2),
                                  "first_ms": first}
                report.row(label, f"p50 {timings[label]['p50_ms']} ms, "
                                  f"p95 {timings[label]['p95_ms']} ms (first request "
                                  f"{first} ms)")
    finally:
        await db.dispose()
    report.metrics["pages"] = timings
    worst_list = max(v["p95_ms"] for k, v in timings.items() if k.startswith("dead"))
    worst_overview = max(v["p95_ms"] for k, v in timings.items() if k.startswith("overview"))
    report.targets += [
        Target("dead-letter page p95, worst", worst_list, 50, "<=", "ms"),
        Target("overview p95, worst", worst_overview, 50, "<=", "ms"),
    ]
    return report
