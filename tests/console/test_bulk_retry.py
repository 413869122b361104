"""Retry all matching from the console: a preview count, a confirmation, then a job whose
progress lives in PostgreSQL (the page polls it by reloading; a job whose process stopped
says so)."""

from __future__ import annotations

from sqlalchemy import text

from bot.console.security import SESSION_COOKIE
from domain.console_sessions import ConsoleSessions
from tests.bot.support import replayable
from tests.bot.world import World, setup_guild
from tests.console.support import BASE, console_client

SIGNATURE = "verify/retries_exhausted/WriteConflict"


async def test_retry_all_previews_confirms_and_reports_progress(world: World) -> None:
    await setup_guild(world)
    made = [await replayable(world.container, world.guild.id) for _ in range(3)]
    base = f"/console/g/{world.guild.id}/dead-letters/retry-all"
    async with console_client(world) as http:
        new = await ConsoleSessions(world.container.services.stores.console_sessions).login(
            world.staff, "staffer")
        http.cookies.set(SESSION_COOKIE, new.cookie_value)
        preview = await http.get(base, params={"signature": SIGNATURE})
        assert preview.status_code == 200 and "<strong>3</strong>" in preview.text
        assert (await http.get(base, params={"status": "resolved"})).status_code == 400
        started = await http.post(base, data={"csrf": new.csrf_token, "status": "unresolved",
                                              "signature": SIGNATURE},
                                  headers={"origin": BASE})
        assert started.status_code == 303
        job_url = started.headers["location"]
        await world.container.services.bulk_jobs.wait()
        page = await http.get(job_url)
        assert "Done: 3 resolved, 0 failed" in page.text
        assert 'http-equiv="refresh"' not in page.text  # no more polling once done
        # A job whose process stopped while it ran is shown as interrupted, not running.
        async with world.container.db.transaction() as conn:
            await conn.execute(text("UPDATE bulk_jobs SET status = 'running', "
                                    "updated_at = now() - interval '5 minutes'"))
        assert "Interrupted" in (await http.get(job_url)).text
        # Another server's job id is not there.
        other = job_url.replace(str(world.guild.id), "123456789")
        assert (await http.get(other)).status_code == 404
    async with world.container.db.autocommit() as conn:
        sources = list((await conn.execute(text(
            "SELECT DISTINCT source::text FROM remediation_actions"))).scalars())
    assert sources == ["console"]
    for user, _ in made:
        assert await world.state(user) == "verified"
