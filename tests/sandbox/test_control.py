"""The /_sandbox/ control API a human uses with curl, and the standalone entry point."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import aiohttp
import discord
import pytest

from .support import bot_with_commands, dlq_group, expect, make_bot, running

pytestmark = pytest.mark.asyncio

ROOT = Path(__file__).resolve().parents[2]


async def test_control_api_drives_joins_and_commands(sandbox, guild):
    async with (
        running(sandbox, bot_with_commands(guild, dlq_group())) as bot,
        aiohttp.ClientSession() as http,
    ):
        base = sandbox.base_url + "/_sandbox"
        async with http.get(base + "/") as resp:
            index = await resp.json()
        assert index["token"] == sandbox.token and str(guild.id) in index["guilds"]

        joined = expect(bot, "member_join")
        async with http.post(
            base + "/join", json={"guild_id": str(guild.id), "username": "curl-user"}
        ) as resp:
            user_id = int((await resp.json())["user_id"])
        assert (await joined).id == user_id

        body = {
            "guild_id": guild.id,
            "user_id": guild.owner_id,
            "command": "dlq retry",
            "options": {"job": 9},
            "wait": 5,
        }
        async with http.post(base + "/command", json=body) as resp:
            answer = await resp.json()
        assert answer["response_type"] == 4
        assert answer["messages"][0]["content"] == "retrying 9 force=False"

        refused = {
            "guild_id": guild.id,
            "user_id": user_id,
            "command": "dlq retry",
            "options": {"job": 1},
        }
        async with http.post(base + "/command", json=refused) as resp:
            assert resp.status == 400 and "hidden" in (await resp.json())["error"]

        async with http.get(base + "/calls") as resp:
            calls = await resp.json()
        assert any(
            c["route"] == "/interactions/{interaction_id}/{interaction_token}/callback"
            for c in calls
        )
        assert not any(c["path"].startswith("/_sandbox") for c in calls)


async def test_python_dash_m_sandbox_prints_its_urls():
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandbox",
        "--port",
        "0",
        "--redirect-uri",
        "http://127.0.0.1:1/callback",
        "--client-secret",
        "shh-local",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(20):
            while not lines or not lines[-1].startswith("Ctrl-C"):
                raw = await process.stdout.readline()
                assert raw, f"sandbox exited early: {lines}"
                lines.append(raw.decode().strip())
        urls = {
            line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in lines if ":" in line
        }
        api = urls["sandbox REST"]
        assert api.startswith("http://127.0.0.1:") and api.endswith("/api/v10")
        assert urls["sandbox gateway"].startswith("ws://127.0.0.1:")
        async with (
            aiohttp.ClientSession() as http,
            http.get(api + "/users/@me", headers={"Authorization": "Bot sandbox-token"}) as resp,
        ):
            assert resp.status == 200
        assert urls["OAuth2 token"] == api + "/oauth2/token"
        base = api.removesuffix("/api/v10")
        async with (
            aiohttp.ClientSession() as http,
            http.get(base + "/_sandbox/") as resp,
        ):
            oauth = (await resp.json())["oauth"]
        assert oauth["redirect_uris"] == ["http://127.0.0.1:1/callback"]
        assert oauth["client_secret"] == "shh-local"
        assert urls["OAuth2 authorize"] == oauth["authorize_url"] == base + "/oauth2/authorize"
    finally:
        process.terminate()
        await process.wait()


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, object]
                ) -> tuple[int, dict[str, object]]:
    async with http.post(url, json=body) as resp:
        return resp.status, await resp.json()


async def test_onboard_sends_a_newcomers_gateway_events_in_order(sandbox, guild):
    # The cached member changes in place: the gateway's order is read from the event types,
    # and each update's state from its `before` copy.
    types: list[str] = []
    befores: list[tuple[int, bool]] = []
    bot = make_bot()

    async def on_socket_event_type(event_type: str) -> None:
        if event_type.startswith("GUILD_MEMBER"):
            types.append(event_type)

    async def on_member_update(before: discord.Member, after: discord.Member) -> None:
        befores.append((before.flags.value, bool(before.pending)))

    bot.add_listener(on_socket_event_type)
    bot.add_listener(on_member_update)
    async with running(sandbox, bot), aiohttp.ClientSession() as http:
        base = sandbox.base_url + "/_sandbox"
        screened = expect(bot, "member_update", lambda _b, after: not after.pending)
        status, body = await _post(http, base + "/onboard",
                                   {"guild_id": str(guild.id), "username": "zoe"})
        assert status == 200, body
        cached = (await screened)[1]
        assert body["events"] == ["joined", "started_onboarding", "completed_onboarding",
                                  "rules_accepted"]
        assert types == ["GUILD_MEMBER_ADD"] + ["GUILD_MEMBER_UPDATE"] * 3
        assert befores == [(0, True), (8, True), (10, True)]
        assert (cached.name, cached.flags.value, cached.pending) == ("zoe", 10, False)

        # "until" stops early; a member already there is taken on from where they are.
        status, body = await _post(http, base + "/onboard", {
            "guild_id": guild.id, "username": "yan", "until": "started_onboarding"})
        assert body["events"] == ["joined", "started_onboarding"] and body["pending"] is True
        status, again = await _post(http, base + "/onboard", {
            "guild_id": guild.id, "user_id": body["user_id"]})
        assert again["events"] == ["completed_onboarding", "rules_accepted"]

        members = len(guild.members)
        status, refused = await _post(http, base + "/onboard", {
            "guild_id": guild.id, "username": "x", "until": "verified"})
        assert status == 400 and "until" in str(refused["error"])
        assert len(guild.members) == members, "a refused request changes nothing"


async def test_the_index_describes_every_control_endpoint_once(sandbox):
    async with aiohttp.ClientSession() as http, http.get(sandbox.base_url + "/_sandbox/") as r:
        index = await r.json()
        assert (await r.text()).endswith("}\n"), "curl's output ends its line"
    described = [(e["method"], e["path"]) for e in index["endpoints"]]
    assert len(described) == len(set(described))
    registered = {(route.method, route.resource.canonical)
                  for route in sandbox.server.app.router.routes()
                  if route.resource is not None and route.method != "HEAD"
                  and route.resource.canonical.startswith("/_sandbox")}
    assert set(described) == registered
    bodies = {e["path"]: e["body"] for e in index["endpoints"]}
    assert '"guild_id"' in bodies["/_sandbox/onboard"] and "until" in bodies["/_sandbox/onboard"]
    assert all(e["does"] for e in index["endpoints"])


async def test_wait_answers_with_the_reply_that_follows_a_deferral(sandbox, guild):
    bot = make_bot()

    @bot.tree.command(name="slow", description="thinks, then answers",
                      guild=discord.Object(guild.id))
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.followup.send("done thinking", ephemeral=True)

    async def setup_hook() -> None:
        await bot.tree.sync(guild=discord.Object(guild.id))

    bot.setup_hook = setup_hook  # type: ignore[method-assign]
    async with running(sandbox, bot), aiohttp.ClientSession() as http:
        status, answer = await _post(http, sandbox.base_url + "/_sandbox/command", {
            "guild_id": str(guild.id), "user_id": str(guild.owner_id), "command": "slow",
            "wait": 5})
    assert status == 200 and answer["text"] == ["done thinking"], answer


async def test_python_dash_m_sandbox_on_a_taken_port_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sandbox", "--port", port, "--no-demo", cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    assert err.decode().splitlines() == [
        f"sandbox: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(choose another port with --port)"]
