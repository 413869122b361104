"""REST behaviour: rate limits, nonces, faults, unknown routes, moderation and its events."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import discord
import pytest

from sandbox import MemberFlag, Perm, Sandbox

from .support import cached_guild, cached_member, expect, make_bot, running, text_channel

pytestmark = pytest.mark.asyncio

MESSAGES = "/channels/{channel_id}/messages"


async def _post(
    sandbox: Sandbox, channel_id: int, body: dict[str, Any]
) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": f"Bot {sandbox.token}"}
    url = f"{sandbox.api_url}/channels/{channel_id}/messages"
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.json()


async def test_sixth_quick_post_gets_429_with_headers():
    async with Sandbox() as sandbox:  # Discord's own 5 per 5 s, so slow machines stay in one window
        channel = sandbox.create_guild().channel_named("general")
        answers = [await _post(sandbox, channel.id, {"content": f"m{i}"}) for i in range(6)]
        assert [status for status, _, _ in answers] == [200] * 5 + [429]
        _, ok_headers, _ = answers[0]
        assert ok_headers["X-RateLimit-Limit"] == "5"
        assert ok_headers["X-RateLimit-Remaining"] == "4"
        assert 0 < float(ok_headers["X-RateLimit-Reset-After"]) <= 5.0
        assert "X-RateLimit-Bucket" in ok_headers and "X-RateLimit-Scope" not in ok_headers
        _, headers, body = answers[5]
        assert body["message"] == "You are being rate limited." and body["global"] is False
        assert 0 < body["retry_after"] <= 5.0
        assert headers["X-RateLimit-Remaining"] == "0" and headers["X-RateLimit-Scope"] == "user"
        assert headers["Via"] and "X-RateLimit-Reset" in headers and "Retry-After" in headers
        assert [m.content for m in sandbox.messages(channel)] == [f"m{i}" for i in range(5)]


async def test_discord_py_waits_out_the_rate_limit(sandbox, guild):
    async with running(sandbox, make_bot()) as bot:
        channel = text_channel(bot, guild.channel_named("mod-log").id)
        sandbox.exhaust_rate_limit(channel.id)  # someone else spent the bucket: first send gets 429
        for i in range(6):
            await channel.send(f"entry {i}")
    assert [m.content for m in sandbox.messages("mod-log", guild)] == [
        f"entry {i}" for i in range(6)
    ]
    statuses = [c.status for c in sandbox.calls_to("POST", MESSAGES)]
    assert statuses.count(429) >= 1 and statuses.count(200) == 6


async def test_enforced_nonce_returns_the_first_message(sandbox, guild):
    async with running(sandbox, make_bot()) as bot:
        channel = text_channel(bot, guild.channel_named("general").id)
        # discord.py 2.7.1 always adds enforce_nonce=true when a nonce is given.
        first = await channel.send("outbox row 17", nonce="outbox-17")
        again = await channel.send("outbox row 17", nonce="outbox-17")
    status, _, other = await _post(
        sandbox, channel.id, {"content": "no enforcement", "nonce": "outbox-17"}
    )
    assert status == 200
    assert first.id == again.id != int(other["id"])
    assert [m.content for m in sandbox.messages("general", guild)] == [
        "outbox row 17",
        "no enforcement",
    ]
    assert [(h.nonce, h.message_id) for h in sandbox.duplicates_prevented] == [
        ("outbox-17", first.id)
    ]


async def test_allowed_mentions_are_recorded_and_honoured(sandbox, guild):
    member = sandbox.member_join(guild, 777, "pingme", pending=False)
    async with running(sandbox, make_bot()) as bot:
        channel = text_channel(bot, guild.channel_named("general").id)
        await channel.send(f"hi <@{member.id}>", allowed_mentions=discord.AllowedMentions.none())
        await channel.send(f"hi <@{member.id}>")
    quiet, loud = sandbox.messages("general", guild)
    assert quiet.allowed_mentions == {"parse": []} and quiet.mentions == []
    assert loud.mentions == [member.id]


async def test_faults_500_403_404(sandbox, guild):
    async with running(sandbox, make_bot()) as bot:
        channel = text_channel(bot, guild.channel_named("general").id)
        sandbox.inject_fault("POST", MESSAGES, 500)
        await channel.send("survives one 500")  # discord.py retries 5xx after a second
        sandbox.inject_fault("POST", "/channels/*/messages", 403)
        with pytest.raises(discord.Forbidden) as forbidden:
            await channel.send("refused")
        assert forbidden.value.code == 50013
        sandbox.inject_fault("*", MESSAGES, 404)
        with pytest.raises(discord.NotFound) as missing:
            await channel.send("gone")
        assert missing.value.code == 10003
    statuses = [(c.status, c.fault) for c in sandbox.calls_to("POST", MESSAGES)]
    assert statuses == [(500, "500"), (200, None), (403, "403"), (404, "404")]
    assert [m.content for m in sandbox.messages(channel.id)] == ["survives one 500"]


async def test_fault_429_is_retried_by_discord_py(sandbox, guild):
    async with running(sandbox, make_bot()) as bot:
        channel = text_channel(bot, guild.channel_named("general").id)
        sandbox.inject_fault("POST", MESSAGES, 429, retry_after=0.05)
        await channel.send("after a 429")
    assert [c.status for c in sandbox.calls_to("POST", MESSAGES)] == [429, 200]


async def test_hang_delays_the_answer_and_may_still_post(sandbox, guild):
    async with running(sandbox, make_bot()) as bot:
        channel = text_channel(bot, guild.channel_named("general").id)
        sandbox.inject_fault("POST", MESSAGES, "hang", hang_seconds=0.3)
        started = time.monotonic()
        await channel.send("slow but fine")
        assert time.monotonic() - started >= 0.3

        sandbox.inject_fault("POST", MESSAGES, "hang", hang_seconds=0.3)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(channel.send("timed out client side"), 0.05)
        # The client gave up, but the server still posts once the hang ends: use nonces.
        await sandbox.wait_for_message(channel.id, lambda m: m.content == "timed out client side")


async def test_unknown_route_is_404_and_recorded(sandbox, guild):
    async with running(sandbox, make_bot()) as bot:
        with pytest.raises(discord.NotFound):
            await bot.http.request(
                discord.http.Route("GET", "/guilds/{guild_id}/audit-logs", guild_id=guild.id)
            )
    (unknown,) = sandbox.unknown_routes
    assert unknown.path == f"/guilds/{guild.id}/audit-logs" and unknown.status == 404
    assert unknown.route is None


async def test_deleted_and_denied_channels(sandbox, guild):
    async with running(sandbox, make_bot()) as bot:
        general = text_channel(bot, guild.channel_named("general").id)
        mod_log = text_channel(bot, guild.channel_named("mod-log").id)
        sandbox.deny_channel(mod_log.id)
        with pytest.raises(discord.Forbidden) as denied:
            await mod_log.send("log entry")
        assert denied.value.code == 50013
        sandbox.deny_channel(mod_log.id, permissions=Perm.VIEW_CHANNEL)
        with pytest.raises(discord.Forbidden) as hidden:
            await mod_log.send("log entry")
        assert hidden.value.code == 50001
        sandbox.delete_channel(general.id)
        with pytest.raises(discord.NotFound) as gone:
            await general.send("hello?")
        assert gone.value.code == 10003


async def test_embeds_need_embed_links_and_are_read_as_text(sandbox, guild):
    async with running(sandbox, make_bot()) as bot:
        mod_log = text_channel(bot, guild.channel_named("mod-log").id)
        embeds = [discord.Embed(description="line 1\nline 2"),
                  discord.Embed(title="T", description="line 3")]
        await mod_log.send("head", embeds=embeds)
        (message,) = sandbox.messages(mod_log.id)
        assert message.text == "head\nline 1\nline 2\nT\nline 3"
        assert message.lines() == ["head", "line 1", "line 2", "T", "line 3"]
        # Without Embed Links, Discord drops the embeds and refuses a message of embeds only.
        sandbox.deny_channel(mod_log.id, permissions=Perm.EMBED_LINKS)
        with pytest.raises(discord.Forbidden) as denied:
            await mod_log.send(embeds=embeds)
        assert denied.value.code == 50013
        await mod_log.send("text stays", embeds=embeds)
    assert [(m.content, m.embeds) for m in sandbox.messages(mod_log.id)][1:] == [
        ("text stays", [])
    ]


async def test_role_add_updates_the_client_cache(sandbox, guild):
    member = sandbox.member_join(guild, 9001, "newbie")
    verified = sandbox.add_role(guild, "Verified")
    async with running(sandbox, make_bot()) as bot:
        cached = cached_member(bot, guild.id, member.id)
        assert cached.pending
        updated = expect(bot, "member_update", lambda before, after: after.id == member.id)
        await cached.add_roles(discord.Object(verified.id), reason="passed onboarding")
        _, after = await updated
        assert verified.id in [r.id for r in after.roles]
        assert cached_member(bot, guild.id, member.id).get_role(verified.id) is not None
        removed = expect(
            bot, "member_update", lambda before, after: after.get_role(verified.id) is None
        )
        await cached.remove_roles(discord.Object(verified.id))
        await removed
    changes = [(c.user_id, c.role_id, c.action, c.source) for c in sandbox.role_changes]
    assert changes == [
        (member.id, verified.id, "add", "rest"),
        (member.id, verified.id, "remove", "rest"),
    ]


async def test_role_above_the_bot_is_refused(sandbox, guild):
    member = sandbox.member_join(guild, 9002, "target", pending=False)
    top = sandbox.add_role(guild, "Admins", position=50)
    async with running(sandbox, make_bot()) as bot:
        cached = cached_member(bot, guild.id, member.id)
        with pytest.raises(discord.Forbidden) as refused:
            await cached.add_roles(discord.Object(top.id))
        assert refused.value.code == 50013
    assert sandbox.role_changes == []


async def test_kick_and_ban_send_their_events(sandbox, guild):
    kicked = sandbox.member_join(guild, 9101, "kicked", pending=False)
    banned = sandbox.member_join(guild, 9102, "banned", pending=False)
    async with running(sandbox, make_bot()) as bot:
        server = cached_guild(bot, guild.id)
        removed = expect(bot, "member_remove")
        await server.kick(discord.Object(kicked.id), reason="spam")
        assert (await removed).id == kicked.id
        ban_seen = expect(bot, "member_ban")
        ban_removed = expect(bot, "member_remove", lambda m: m.id == banned.id)
        await server.ban(discord.Object(banned.id), reason="worse spam")
        _, ban_user = await ban_seen
        assert ban_user.id == banned.id
        await ban_removed
        assert server.get_member(banned.id) is None
        unban_seen = expect(bot, "member_unban")
        await server.unban(discord.Object(banned.id))
        assert (await unban_seen)[1].id == banned.id
    assert kicked.id not in guild.members and banned.id not in guild.members and not guild.bans


async def test_member_update_reaches_the_cache(sandbox, guild):
    member = sandbox.member_join(guild, 9201, "onboarding")
    async with running(sandbox, make_bot()) as bot:
        assert cached_member(bot, guild.id, member.id).pending
        flags = MemberFlag.STARTED_ONBOARDING | MemberFlag.COMPLETED_ONBOARDING
        sandbox.member_update(guild, member.id, pending=False, flags=int(flags))
        before, after = await bot.wait_for("member_update", timeout=5)
        assert before.pending and not after.pending
        assert after.flags.started_onboarding and after.flags.completed_onboarding


async def test_edit_delete_and_direct_messages(sandbox, guild):
    member = sandbox.member_join(guild, 9301, "dm-me", pending=False)
    async with running(sandbox, make_bot()) as bot:
        channel = text_channel(bot, guild.channel_named("general").id)
        sent = await channel.send("draft")
        await sent.edit(content="final")
        assert sandbox.messages(channel.id)[0].content == "final"
        await sent.delete()
        assert sandbox.messages(channel.id) == []
        user = cached_member(bot, guild.id, member.id)
        await user.send("welcome by DM")
        with pytest.raises(discord.HTTPException) as empty:
            await channel.send("")
        assert empty.value.code == 50006
        with pytest.raises(discord.HTTPException) as too_long:
            await channel.send("x" * 2001)
        assert too_long.value.code == 50035
    dm = sandbox.world.dm_channel(sandbox.world.user(member.id))
    assert [m.content for m in sandbox.messages(dm.id)] == ["welcome by DM"]
    assert not sandbox.unknown_routes


async def test_message_content_needs_its_intent_unless_the_bot_is_mentioned(sandbox, guild):
    author = sandbox.member_join(guild, 9401, "chatty", pending=False)
    async with running(sandbox, make_bot()) as bot:  # guild_messages but no message_content
        sandbox.user_message("general", author.id, "just chatting", guild=guild)
        plain = await bot.wait_for("message", timeout=5)
        assert plain.author.id == author.id and plain.content == ""
        sandbox.user_message("general", author.id, f"<@{sandbox.bot_user.id}> help", guild=guild)
        mentioned = await bot.wait_for("message", timeout=5)
        assert mentioned.content.endswith("help")
        assert bot.user in mentioned.mentions
