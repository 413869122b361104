"""What Discord refuses in a message body, and what it accepts but does not honour.

Nonces (type, length, de-duplication per author), the shape of allowed_mentions,
embed fields without a name or value, and @everyone without Mention Everyone.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import discord
import pytest

from sandbox import Perm, Sandbox
from sandbox.permissions import DEFAULT_EVERYONE

from .support import expect, make_bot, running, text_channel

pytestmark = pytest.mark.asyncio


async def _send(
    sandbox: Sandbox, method: str, path: str, body: dict[str, Any]
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bot {sandbox.token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, sandbox.api_url + path, json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


def _form_error(answer: Any, field: str) -> str:
    """The error code Discord reports for one field of an Invalid Form Body."""
    assert answer["code"] == 50035 and answer["message"] == "Invalid Form Body", answer
    return str(answer["errors"][field]["_errors"][0]["code"])


async def test_nonce_is_an_integer_or_at_most_25_characters(sandbox, guild):
    path = f"/channels/{guild.channel_named('general').id}/messages"
    status, answer = await _send(sandbox, "POST", path, {"content": "a", "nonce": "n" * 26})
    assert status == 400 and _form_error(answer, "nonce") == "BASE_TYPE_MAX_LENGTH"
    status, answer = await _send(sandbox, "POST", path, {"content": "b", "nonce": ["x"]})
    assert status == 400 and _form_error(answer, "nonce") == "BASE_TYPE_BAD_TYPE"
    assert sandbox.messages("general", guild) == []
    for nonce in ("n" * 25, 1234567890123456789012345678):
        status, answer = await _send(sandbox, "POST", path, {"content": "ok", "nonce": nonce})
        assert status == 200 and answer["nonce"] == nonce
    assert [m.content for m in sandbox.messages("general", guild)] == ["ok", "ok"]


async def test_discord_py_gets_invalid_form_body_for_a_long_nonce(sandbox, guild):
    async with running(sandbox, make_bot()) as bot:
        channel = text_channel(bot, guild.channel_named("general").id)
        with pytest.raises(discord.HTTPException) as refused:
            await channel.send("row 1", nonce="install-0123456789abcdef-1")  # 26 characters
    assert refused.value.status == 400 and refused.value.code == 50035
    assert "nonce" in str(refused.value)


async def test_enforced_nonce_is_per_author_in_any_channel_across_sessions(sandbox, guild):
    general, mod_log = guild.channel_named("general"), guild.channel_named("mod-log")
    async with running(sandbox, make_bot()) as bot:
        first = await text_channel(bot, general.id).send("batch 7", nonce="batch-7")
        first_session = sandbox.sessions[0].session_id
    # The bot restarts: a new gateway session of the same bot user, another channel.
    async with running(sandbox, make_bot()) as bot:
        assert sandbox.connected_sessions[0].session_id != first_session
        again = await text_channel(bot, mod_log.id).send("batch 7 again", nonce="batch-7")
    assert again.id == first.id
    assert sandbox.messages("mod-log", guild) == []
    assert [h.message_id for h in sandbox.duplicates_prevented] == [first.id]

    # Another author with the same nonce is not the bot's duplicate, but is de-duplicated
    # against their own earlier message.
    member = sandbox.member_join(guild, None, "alice", pending=False)
    own = sandbox.user_message(mod_log, member.id, "hi", nonce="batch-7", enforce_nonce=True)
    assert own.id != first.id and own.author.id == member.id
    repeat = sandbox.user_message(general, member.id, "hi", nonce="batch-7", enforce_nonce=True)
    assert repeat.id == own.id

    # Past the window, the same nonce posts a new message.
    sandbox.advance_clock(sandbox.config.nonce_window + 1)
    status, later = await _send(
        sandbox,
        "POST",
        f"/channels/{general.id}/messages",
        {"content": "batch 7 much later", "nonce": "batch-7", "enforce_nonce": True},
    )
    assert status == 200 and int(later["id"]) not in (first.id, own.id)


async def test_allowed_mentions_parse_and_ids_of_one_kind_are_exclusive(sandbox, guild):
    channel = guild.channel_named("general")
    path = f"/channels/{channel.id}/messages"
    user = str(guild.owner_id)
    staff = str(guild.role_named("Staff").id)
    bad = [
        ({"parse": ["users"], "users": [user]}, "allowed_mentions"),
        ({"parse": ["roles", "everyone"], "roles": [staff]}, "allowed_mentions"),
        ({"users": [str(n) for n in range(101)]}, "allowed_mentions.users"),
        ({"roles": [str(n) for n in range(101)]}, "allowed_mentions.roles"),
        ({"parse": ["members"]}, "allowed_mentions.parse.0"),
    ]
    for allowed, field in bad:
        body = {"content": f"<@{user}>", "allowed_mentions": allowed}
        status, answer = await _send(sandbox, "POST", path, body)
        assert status == 400 and field in answer["errors"], (allowed, answer)
        assert answer["code"] == 50035
    assert sandbox.messages(channel) == []

    sandbox.advance_clock(sandbox.config.message_rate_per)  # refused posts spent the bucket too
    fine = {"parse": ["roles"], "users": [user, *(str(n) for n in range(99))]}
    status, posted = await _send(
        sandbox, "POST", path, {"content": f"<@{user}>", "allowed_mentions": fine}
    )
    assert status == 200 and posted["mentions"][0]["id"] == user

    # An edit with the same bad shape is refused too, and changes nothing.
    edit = f"{path}/{posted['id']}"
    body = {"content": "edited", "allowed_mentions": {"parse": ["users"], "users": [user]}}
    status, answer = await _send(sandbox, "PATCH", edit, body)
    assert status == 400 and _form_error(answer, "allowed_mentions").endswith("EXCLUSIVE")
    assert sandbox.messages(channel)[0].content == f"<@{user}>"


async def test_embed_fields_need_a_name_and_a_value(sandbox, guild):
    path = f"/channels/{guild.channel_named('general').id}/messages"
    cases = [
        ({"name": "", "value": "v"}, "embeds.0.fields.0.name", "BASE_TYPE_BAD_LENGTH"),
        ({"name": "n", "value": "   "}, "embeds.0.fields.0.value", "BASE_TYPE_BAD_LENGTH"),
        ({"name": "n"}, "embeds.0.fields.0.value", "BASE_TYPE_REQUIRED"),
    ]
    for field, where, code in cases:
        body = {"embeds": [{"title": "t", "fields": [field]}]}
        status, answer = await _send(sandbox, "POST", path, body)
        assert status == 400 and _form_error(answer, where) == code
    assert sandbox.messages("general", guild) == []
    body = {"embeds": [{"title": "t", "fields": [{"name": "n", "value": "v"}]}]}
    assert (await _send(sandbox, "POST", path, body))[0] == 200


async def test_everyone_pings_only_with_mention_everyone():
    async with Sandbox() as sandbox:
        without = sandbox.create_guild(
            "No pings", everyone_permissions=DEFAULT_EVERYONE & ~Perm.MENTION_EVERYONE
        )
        with_it = sandbox.create_guild("Pings")  # @everyone has Mention Everyone by default
        async with running(sandbox, make_bot()) as bot:
            quiet = await text_channel(bot, without.channel_named("general").id).send(
                "@everyone the server restarts"
            )
            seen = expect(bot, "message", lambda m: m.content.startswith("@here"))
            loud = await text_channel(bot, with_it.channel_named("general").id).send(
                "@here the server restarts"
            )
            assert (await seen).mention_everyone
            muted = await text_channel(bot, with_it.channel_named("general").id).send(
                "@everyone muted", allowed_mentions=discord.AllowedMentions(everyone=False)
            )
    # Discord posts all three; only the one with the right and the leave to ping pings.
    assert (quiet.mention_everyone, loud.mention_everyone, muted.mention_everyone) == (
        False,
        True,
        False,
    )
    stored = [m.mention_everyone for m in sandbox.messages("general", without)]
    assert stored == [False]
    assert [m.mention_everyone for m in sandbox.messages("general", with_it)] == [True, False]
