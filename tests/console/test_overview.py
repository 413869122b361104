"""The console overview: snapshots refreshed by the worker (each ledger row counted once,
however often they are refreshed), the page's charts with their numbers, the API route."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from bot.console.security import SESSION_COOKIE
from domain.console_sessions import ConsoleSessions
from domain.lifecycle import Source
from tests.api.support import AUTH
from tests.bot.support import dead_letter
from tests.bot.world import World, setup_guild
from tests.console.support import console_client


async def test_the_overview_counts_each_day_and_each_transition_once(world: World) -> None:
    await setup_guild(world)
    entries = [await dead_letter(world.container, world.guild.id) for _ in range(3)]
    await world.container.remediation.resolve(world.guild.id, entries[0], world.staff,
                                              "fixed", Source.STAFF)
    # Reopened and resolved again the same day: still one entry resolved that day.
    await world.container.remediation.reopen(world.guild.id, entries[0], world.staff,
                                             Source.STAFF, "not yet")
    await world.container.remediation.resolve(world.guild.id, entries[0], world.staff,
                                              "fixed now", Source.STAFF)
    async with world.container.db.transaction() as conn:  # the ledger is a minute old
        await conn.execute(text("UPDATE member_transitions SET created_at = "
                                "now() - interval '2 minutes'"))
        ledger = (await conn.execute(text(
            "SELECT count(*) FROM member_transitions WHERE guild_id = :g"),
            {"g": world.guild.id})).scalar_one()
    overview = world.container.services.overview
    assert await overview.refresh() > 0
    await overview.refresh()  # again: nothing counted twice
    data = await overview.read(world.guild.id)
    today = data.days[-1]
    assert today.day == datetime.now(UTC).date()
    assert (today.new_entries, today.resolved_entries, today.open_entries) == (3, 1, 2)
    [signature] = data.open_by_signature
    assert signature.points[-1][1] == 2
    assert sum(v for s in data.transitions_by_source for _, v in s.points) == ledger

    async with console_client(world) as http:
        new = await ConsoleSessions(world.container.services.stores.console_sessions).login(
            world.staff, "staffer")
        http.cookies.set(SESSION_COOKIE, new.cookie_value)
        page = await http.get(f"/console/g/{world.guild.id}/overview")
        assert page.status_code == 200 and page.text.count("<svg") == 4
        assert f"<td>{today.day.isoformat()}</td><td>3</td><td>1</td><td>2</td>" in page.text
        http.cookies.clear()
        answer = await http.get(f"/api/v1/guilds/{world.guild.id}/overview", headers=AUTH)
    assert answer.status_code == 200
    body = answer.json()
    assert body["days"][-1] == {"day": today.day.isoformat(), "new_entries": 3,
                                "resolved_entries": 1, "open_entries": 2}
