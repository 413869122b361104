"""The /_sandbox/ control API a human uses with curl, and the standalone entry point."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import pytest

from .support import bot_with_commands, dlq_group, expect, running

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
