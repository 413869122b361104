"""What an independent review of the console tried: odd input gets a clear page (400, 403 or
404, with the console's headers), never a 500 or JSON; a filter carries into retry all; no
text from a URL is shown as the console's own words."""

from __future__ import annotations

import time

import pytest

from bot.console.staff import CACHE_MAX, remember
from tests.bot.support import dead_letter, replayable
from tests.bot.world import World, setup_guild
from tests.console.support import BASE, console_client, staff_login


async def test_odd_input_gets_a_page_never_a_500(world: World) -> None:
    await setup_guild(world)
    entry = await dead_letter(world.container, world.guild.id)
    g = f"/console/g/{world.guild.id}"
    async with console_client(world) as http:
        csrf = await staff_login(world, http)
        for origin in ("http://console.test:99999", "http://[::1", "http://console.test:abc"):
            answer = await http.post("/console/logout", data={"csrf": csrf},
                                     headers={"origin": origin})
            assert answer.status_code == 403, origin
        for path, data in ((f"{g}/dead-letters/{entry}/resolve", {"note": "a\x00b"}),
                           (f"{g}/dead-letters/selected", {"action": "dismiss",
                                                           "id": [str(entry)], "note": "\x00"}),
                           (f"{g}/dead-letters/retry-all", {"signature": "\x00"})):
            answer = await http.post(path, data={"csrf": csrf, **data},
                                     headers={"origin": BASE})
            assert answer.status_code == 400, path
        for path in (f"{g}/dead-letters?signature=%00", f"{g}/dead-letters/retry-all?"
                     "signature=%00"):
            assert (await http.get(path)).status_code == 400, path
        # A bad filter is named, with what it should be.
        for query, words in (("member=carol", "Member id is a Discord user id (digits)"),
                             ("status=bogus", "Status must be one of: unresolved, open"),
                             ("order=sideways", "Order must be newest or oldest"),
                             ("operation=fly", "Operation is not one Lifeline knows")):
            answer = await http.get(f"{g}/dead-letters?{query}")
            assert answer.status_code == 400 and words in answer.text, (query, answer.text)
        answer = await http.post(f"{g}/deliveries/{2**63 + 5}/retry", data={"csrf": csrf},
                                 headers={"origin": BASE})
        assert answer.status_code == 404
        for path in ("/console/g/abc/dead-letters", f"{g}/jobs/abc",
                     f"{g}/dead-letters/not-a-number"):
            answer = await http.get(path)
            assert answer.status_code == 404, path
            assert answer.headers["content-type"].startswith("text/html")
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        planted = await http.get(f"{g}/deliveries",
                                 params={"done": "Your session expired: go to evil.example"})
        assert planted.status_code == 200 and "evil.example" not in planted.text
    assert await world.container.remediation.get(world.guild.id, entry)


async def test_retry_all_keeps_the_lists_member_filter(world: World) -> None:
    await setup_guild(world)
    made = [await replayable(world.container, world.guild.id) for _ in range(3)]
    member = made[0][0]
    async with console_client(world) as http:
        await staff_login(world, http)
        listed = await http.get(f"/console/g/{world.guild.id}/dead-letters",
                                params={"member": str(member)})
        assert "1 matching" in listed.text and f"member={member}" in listed.text
        preview = await http.get(f"/console/g/{world.guild.id}/dead-letters/retry-all",
                                 params={"member": str(member)})
        assert "<strong>1</strong>" in preview.text
        assert f'name="member" value="{member}"' in preview.text


def test_the_staff_cache_cannot_be_grown_without_bound() -> None:
    cache: dict[tuple[int, int], tuple[bool, float]] = {}
    for i in range(CACHE_MAX + 50):
        remember(cache, (1, i), (False, time.monotonic() + 60))
    assert len(cache) == CACHE_MAX and (1, 0) not in cache


@pytest.mark.parametrize("note", ["\tcmd", "\rcmd", "=1+1", "@SUM(A1)"])
def test_formula_like_cells_are_quoted(note: str) -> None:
    from bot.console.pages_audit import csv_cell
    assert csv_cell(note) == "'" + note
