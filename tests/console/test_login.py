"""Login with Discord against the sandbox's OAuth2 (real HTTP both ways): the code flow with
state and PKCE, the user's token revoked at once, the code used once and never logged."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bot.console.security import LOGIN_COOKIE, SESSION_COOKIE
from tests.bot.world import World, setup_guild
from tests.console.support import CALLBACK, console_client


async def _start(http: httpx.AsyncClient) -> dict[str, str]:
    started = await http.get("/console/login")
    assert started.status_code == 302 and LOGIN_COOKIE in started.cookies
    location = urlsplit(started.headers["location"])
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert location.path == "/oauth2/authorize"
    assert query["scope"] == "identify" and query["redirect_uri"] == CALLBACK
    assert query["code_challenge_method"] == "S256" and len(query["state"]) >= 24
    return query


def _callback(redirect_url: str) -> str:
    parts = urlsplit(redirect_url)
    return f"{parts.path}?{parts.query}"


async def test_a_staff_member_logs_in_and_their_discord_token_is_revoked(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    await setup_guild(world)
    caplog.set_level(logging.DEBUG)
    async with console_client(world) as http:
        query = await _start(http)
        code = world.sandbox.oauth.authorize(world.staff, CALLBACK, "identify",
                                             state=query["state"],
                                             code_challenge=query["code_challenge"])
        back = await http.get(_callback(code.redirect_url))
        assert back.status_code == 303 and back.headers["location"] == "/console"
        assert SESSION_COOKIE in http.cookies
        page = await http.get("/console")
        assert world.guild.name in page.text and "Log out" in page.text
        [token] = world.sandbox.oauth_tokens
        assert token.revoked == "revoke"  # used once to learn who it is, then revoked
        # The callback URL again (a reload, a leaked link): refused, nothing logged in.
        before = http.cookies[SESSION_COOKIE]
        again = await http.get(_callback(code.redirect_url))
        assert again.headers["location"] == "/console?login=expired"
        assert http.cookies[SESSION_COOKIE] == before  # no new session
    # Lifeline's own log lines (not the test's HTTP client's, nor the sandbox's, which
    # plays Discord).
    logged = "\n".join(r.getMessage() for r in caplog.records
                       if r.name.split(".")[0] in ("bot", "domain", "cogs", "uvicorn"))
    assert code.value not in logged and token.access_token not in logged
    assert f"console login: user {world.staff}" in logged


async def test_a_callback_this_browser_did_not_start_is_refused(world: World) -> None:
    async with console_client(world) as http:
        query = await _start(http)
        code = world.sandbox.oauth.authorize(world.staff, CALLBACK, "identify",
                                             state="someone-elses-state",
                                             code_challenge=query["code_challenge"])
        refused = await http.get(_callback(code.redirect_url))
        # Away from the callback URL (its code) at once, to the login page saying why.
        assert refused.status_code == 303
        assert refused.headers["location"] == "/console?login=expired"
        refused = await http.get(refused.headers["location"])
        assert refused.status_code == 400
        assert "was not the one this browser started" in refused.text
        refused = await http.get("/console/callback?code=x&state=%C3%A9t%C3%A9",
                                 follow_redirects=True)
        assert refused.status_code == 400  # a state that is not ASCII: refused, not a 500
        http.cookies.clear()  # no login started in this browser at all
        refused = await http.get(f"/console/callback?code=x&state={query['state']}",
                                 follow_redirects=True)
        assert refused.status_code == 400
        assert SESSION_COOKIE not in http.cookies
    assert world.sandbox.oauth_tokens == []  # no code was exchanged


async def test_cancel_at_discord_logs_nobody_in(world: World) -> None:
    async with console_client(world) as http:
        query = await _start(http)
        cancelled = await http.get(f"/console/callback?error=access_denied&state="
                                   f"{query['state']}")
        assert cancelled.headers["location"] == "/console?login=cancelled"
        cancelled = await http.get(cancelled.headers["location"])
        assert cancelled.status_code == 400 and "the login was cancelled" in cancelled.text
        assert SESSION_COOKIE not in http.cookies


async def test_a_non_staff_user_logs_in_and_sees_no_server(world: World) -> None:
    await setup_guild(world)
    member = world.sandbox.member_join(world.guild, None, "just-a-member").user.id
    async with console_client(world) as http:
        query = await _start(http)
        code = world.sandbox.oauth.authorize(member, CALLBACK, "identify",
                                             state=query["state"],
                                             code_challenge=query["code_challenge"])
        await http.get(_callback(code.redirect_url))
        page = await http.get("/console")
        assert "You are staff of no server" in page.text
        guessed = await http.get(f"/console/g/{world.guild.id}/dead-letters")
        assert guessed.status_code == 404


async def test_discord_unreachable_at_login_is_a_clear_page_not_a_500(world: World) -> None:
    import socket
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/api/v10"
    async with console_client(world, discord_api_base=dead) as http:
        query = await _start(http)
        code = world.sandbox.oauth.authorize(world.staff, CALLBACK, "identify",
                                             state=query["state"],
                                             code_challenge=query["code_challenge"])
        answer = await http.get(_callback(code.redirect_url), follow_redirects=True)
        assert answer.status_code == 400
        assert "Discord could not confirm who you are" in answer.text
        assert SESSION_COOKIE not in http.cookies


async def test_the_login_page_says_only_its_own_words(world: World) -> None:
    async with console_client(world) as http:
        page = await http.get("/console", params={"login": "Your session expired: go to "
                                                            "https://evil.example"})
        assert page.status_code == 200 and "evil.example" not in page.text
