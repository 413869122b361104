"""The console's pages over the real bot: who sees which servers (judged from the bot's view
of the member), the headers of every page, and logout's CSRF + Origin check. (Login through
Discord's OAuth is in test_login.py.)"""

from __future__ import annotations

import time

import pytest

from bot.console.security import SESSION_COOKIE, Signer, same_origin
from domain.console_sessions import ConsoleSessions
from tests.bot.world import World, setup_guild
from tests.console.support import BASE, console_client


async def _session(world: World, user_id: int, name: str) -> tuple[str, str]:
    sessions = ConsoleSessions(world.container.services.stores.console_sessions)
    new = await sessions.login(user_id, name)
    return new.cookie_value, new.csrf_token


async def test_staff_see_their_server_and_others_see_none(world: World) -> None:
    await setup_guild(world)
    member = world.sandbox.member_join(world.guild, None, "not-staff").user.id
    async with console_client(world) as http:
        anonymous = await http.get("/console")
        assert anonymous.status_code == 200 and "Log in with Discord" in anonymous.text
        cookie, _ = await _session(world, world.staff, "staffer")
        http.cookies.set(SESSION_COOKIE, cookie)
        page = await http.get("/console")
        assert world.guild.name in page.text and "staffer" in page.text
        cookie, _ = await _session(world, member, "not-staff")
        http.cookies.set(SESSION_COOKIE, cookie)
        page = await http.get("/console")
        assert world.guild.name not in page.text
        assert "You are staff of no server" in page.text


async def test_every_console_page_has_the_safety_headers(world: World) -> None:
    async with console_client(world) as http:
        for path in ("/console", "/console/static/console.css"):
            answer = await http.get(path)
            assert answer.status_code == 200, path
            csp = answer.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert "frame-ancestors 'none'" in csp
            assert answer.headers["x-frame-options"] == "DENY"
            assert answer.headers["referrer-policy"] == "same-origin"
        # The API's answers are not the console's.
        assert "content-security-policy" not in (await http.get("/healthz")).headers


async def test_logout_needs_the_csrf_token_and_the_consoles_origin(world: World) -> None:
    await setup_guild(world)
    async with console_client(world) as http:
        cookie, csrf = await _session(world, world.staff, "staffer")
        http.cookies.set(SESSION_COOKIE, cookie)
        refused = [
            await http.post("/console/logout", headers={"origin": BASE}),
            await http.post("/console/logout", data={"csrf": "guess"},
                            headers={"origin": BASE}),
            await http.post("/console/logout", data={"csrf": csrf},
                            headers={"origin": "https://evil.example"}),
            await http.post("/console/logout", data={"csrf": csrf}),
        ]
        assert [r.status_code for r in refused] == [403, 403, 403, 403]
        assert world.guild.name in (await http.get("/console")).text
        done = await http.post("/console/logout", data={"csrf": csrf},
                               headers={"origin": BASE})
        assert done.status_code == 303 and done.headers["location"] == "/console"
        http.cookies.set(SESSION_COOKIE, cookie)  # the browser kept it: it is dead anyway
        assert "Log in with Discord" in (await http.get("/console")).text


def test_a_signed_value_is_refused_when_tampered_with_or_expired() -> None:
    signer = Signer("k" * 32)
    signed = signer.sign({"state": "abc"}, 60)
    assert signer.unsign(signed) == {"state": "abc", "exp": pytest.approx(time.time() + 60,
                                                                          abs=2)}
    body, mac = signed.rsplit(".", 1)
    assert signer.unsign(body + "." + mac[::-1]) is None
    assert signer.unsign(Signer("other" * 8).sign({"state": "abc"}, 60)) is None
    assert signer.unsign(signer.sign({"state": "abc"}, -1)) is None
    assert signer.unsign(None) is None and signer.unsign("garbage") is None


@pytest.mark.parametrize(("origin", "ok"), [
    ("http://console.test", True), ("http://console.test:80", True),
    ("https://console.test", False), ("http://console.test.evil", False),
    ("null", False), (None, False), ("", False)])
def test_same_origin(origin: str | None, ok: bool) -> None:
    assert same_origin(origin, BASE) is ok


async def test_the_console_runs_without_api_token_and_the_api_stays_off(world: World) -> None:
    await setup_guild(world)
    async with console_client(world, api_token=None) as http:
        assert "Log in with Discord" in (await http.get("/console")).text
        cookie, _ = await _session(world, world.staff, "staffer")
        http.cookies.set(SESSION_COOKIE, cookie)
        assert world.guild.name in (await http.get("/console")).text
        for token in ("", "guess-the-token-1234"):
            off = await http.get(f"/api/v1/guilds/{world.guild.id}/dead-letters",
                                 headers={"authorization": f"Bearer {token}"})
            assert off.status_code == 401
