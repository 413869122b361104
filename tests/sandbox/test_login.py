"""A real discord.py client logs in, identifies and sees the guild."""

from __future__ import annotations

import aiohttp
import discord
import pytest

from sandbox import Intent, Sandbox, SandboxConfig, client_overrides
from sandbox.permissions import PRIVILEGED_INTENTS

from .support import make_bot, running

pytestmark = pytest.mark.asyncio


async def test_login_ready_and_guild_create(sandbox, guild):
    async with running(sandbox, make_bot()) as bot:
        assert bot.user is not None and bot.user.id == sandbox.bot_user.id
        assert bot.application_id == sandbox.application_id
        cached = bot.get_guild(guild.id)
        assert cached is not None and cached.chunked
        assert cached.member_count == len(guild.members) == 2
        assert {c.name for c in cached.text_channels} == {"general", "mod-log"}
        assert cached.me.top_role.name == sandbox.bot_user.username
        assert [s.shard_id for s in sandbox.sessions] == [0]
        assert sandbox.sessions[0].connection is not None
        assert sandbox.sessions[0].connection.compressed  # discord.py asked for zlib-stream
    assert not sandbox.unknown_routes
    assert [c.route for c in sandbox.calls[:2]] == ["/users/@me", "/oauth2/applications/@me"]
    # discord.py closes with 4000 even on client.close(), so the session stays resumable.
    assert sandbox.connected_sessions == []


async def test_bad_token_is_a_login_failure(sandbox):
    bot = make_bot()
    with client_overrides(sandbox.base_url), pytest.raises(discord.LoginFailure):
        await bot.login("not-the-token")
    await bot.close()
    assert sandbox.calls[-1].status == 401


async def test_client_overrides_restore_discord_defaults(sandbox):
    base = discord.http.Route.BASE
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    with client_overrides(sandbox.base_url):
        assert discord.http.Route.BASE == sandbox.api_url
        assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == sandbox.gateway_url
    assert discord.http.Route.BASE == base == "https://discord.com/api/v10"
    assert discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY == gateway


async def test_json_content_type_is_exact(sandbox):
    headers = {"Authorization": f"Bot {sandbox.token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(sandbox.api_url + "/users/@me", headers=headers) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"


async def test_member_events_need_the_members_intent(sandbox, guild):
    no_members = discord.Intents(guilds=True, moderation=True)
    async with running(sandbox, make_bot(no_members)) as bot:
        sandbox.member_join(guild, 555, "quiet")
        sandbox.ban(guild, 555)
        banned = await bot.wait_for("member_ban", timeout=5)
        assert banned[1].id == 555
        session = sandbox.sessions[0]
        assert session.events("GUILD_MEMBER_ADD") == []
        assert session.events("GUILD_MEMBER_REMOVE") == []
        # GUILD_CREATE carried only the bot's own member; the count is the real one.
        cached = bot.get_guild(guild.id)
        assert cached is not None and [m.id for m in cached.members] == [sandbox.bot_user.id]


async def test_unapproved_privileged_intent_closes_with_4014():
    config = SandboxConfig(privileged_intents=PRIVILEGED_INTENTS & ~Intent.GUILD_MEMBERS)
    async with Sandbox(config) as sandbox:
        sandbox.create_guild()
        bot = make_bot()
        with client_overrides(sandbox.base_url), pytest.raises(discord.PrivilegedIntentsRequired):
            await bot.start(sandbox.token)
        await bot.close()
