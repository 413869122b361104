"""Interaction answers Discord refuses: oversized autocomplete answers, and follow-ups or edits
with an interaction token older than 15 minutes (the sandbox clock is advanced, not waited)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands

from sandbox import InteractionHandle, Sandbox

from .support import bot_with_commands, make_bot, running

pytestmark = pytest.mark.asyncio


async def _callback(handle: InteractionHandle, sandbox: Sandbox, body: dict[str, Any]
                    ) -> tuple[int, Any]:
    url = f"{sandbox.api_url}/interactions/{handle.id}/{handle.token}/callback"
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as resp:
        return resp.status, await resp.json() if resp.status != 204 else None


def _choices(count: int, *, name: str = "n", value: str = "v") -> dict[str, Any]:
    return {"type": 8, "data": {"choices": [{"name": name, "value": value}] * count}}


async def test_autocomplete_answers_are_limited_like_discord(sandbox, guild):
    bot = bot_with_commands(guild)
    asked: list[InteractionHandle] = []
    never = asyncio.Event()

    @bot.tree.command(name="find", description="Find", guild=discord.Object(guild.id))
    async def find(interaction: discord.Interaction, job: str) -> None:
        raise AssertionError("only autocomplete is used here")

    @find.autocomplete("job")
    async def jobs(interaction: discord.Interaction, current: str
                   ) -> list[app_commands.Choice[str]]:
        await never.wait()  # the test answers by hand, to read Discord's error body
        return []

    refused = [
        (_choices(26), "data.choices", "BASE_TYPE_MAX_LENGTH"),
        (_choices(1, name=""), "data.choices.0.name", "BASE_TYPE_BAD_LENGTH"),
        (_choices(1, name="n" * 101), "data.choices.0.name", "BASE_TYPE_BAD_LENGTH"),
        (_choices(1, value="v" * 101), "data.choices.0.value", "BASE_TYPE_MAX_LENGTH"),
    ]
    async with running(sandbox, bot):
        for body, field, code in refused:
            handle = sandbox.interactions.command(
                guild, guild.owner_id, "find", {"job": "x"}, channel=None, focused="job"
            )
            asked.append(handle)
            status, answer = await _callback(handle, sandbox, body)
            assert status == 400 and answer["code"] == 50035, (field, answer)
            assert answer["errors"][field]["_errors"][0]["code"] == code
            assert handle.choices is None and not handle.acknowledged
        # At the limits, the answer is taken; numbers may be any size.
        ok = _choices(25, name="n" * 100, value="v" * 100)
        ok["data"]["choices"][0] = {"name": "big", "value": 10**30}
        status, _ = await _callback(asked[0], sandbox, ok)
        assert status == 204 and len(asked[0].choices or []) == 25
        never.set()


async def test_interaction_token_expires_after_15_minutes(sandbox, guild):
    bot = bot_with_commands(guild)
    nearly, expired = asyncio.Event(), asyncio.Event()
    failures: list[discord.HTTPException] = []

    @bot.tree.command(name="report", description="Report", guild=discord.Object(guild.id))
    async def report(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("working")
        progress = await interaction.followup.send("step 1", wait=True)
        await nearly.wait()
        await interaction.edit_original_response(content="still working")  # 14 min: fine
        await expired.wait()
        attempts = (
            interaction.followup.send("step 2"),
            interaction.edit_original_response(content="done"),
            progress.edit(content="step 1 done"),
        )
        for attempt in attempts:
            try:
                await attempt
            except discord.HTTPException as exc:
                failures.append(exc)

    async with running(sandbox, bot):
        handle = sandbox.slash_command(guild, guild.owner_id, "report")
        await handle.wait_followups(1)
        sandbox.advance_clock(14 * 60)
        nearly.set()
        await handle.wait_until(lambda h: h.original and h.original.content == "still working")
        sandbox.advance_clock(60 + 1)
        expired.set()
        await sandbox.wait_until(lambda: len(failures) == 3)
    assert [(f.status, f.code) for f in failures] == [(401, 50027)] * 3
    assert "Invalid Webhook Token" in str(failures[0])
    assert handle.original is not None and handle.original.content == "still working"
    assert [m.content for m in handle.followups] == ["step 1"]


async def test_interaction_responses_check_allowed_mentions(sandbox, guild):
    bot = bot_with_commands(guild)
    seen = asyncio.Event()

    @bot.tree.command(name="quiet", description="Never answers", guild=discord.Object(guild.id))
    async def quiet(interaction: discord.Interaction) -> None:
        seen.set()

    async with running(sandbox, bot):
        handle = sandbox.slash_command(guild, guild.owner_id, "quiet")
        await asyncio.wait_for(seen.wait(), 5)
    owner = str(guild.owner_id)
    bad = {"content": f"<@{owner}>", "allowed_mentions": {"parse": ["users"], "users": [owner]}}
    status, answer = await _callback(handle, sandbox, {"type": 4, "data": bad})
    assert status == 400 and answer["code"] == 50035 and "allowed_mentions" in answer["errors"]
    assert not handle.acknowledged
    good = {"content": f"<@{owner}>", "allowed_mentions": {"users": [owner]}}
    assert (await _callback(handle, sandbox, {"type": 4, "data": good}))[0] == 204
    assert handle.original is not None and handle.original.mentions == [guild.owner_id]


class Silent(discord.ui.View):
    """A button whose press the bot never answers: the test answers by hand."""

    def __init__(self) -> None:
        super().__init__(timeout=30)
        self.pressed = asyncio.Event()

    @discord.ui.button(label="Press", custom_id="silent")
    async def press(
        self, interaction: discord.Interaction, button: discord.ui.Button[Silent]
    ) -> None:
        self.pressed.set()


async def test_updating_a_message_from_a_button_checks_the_edit(sandbox, guild):
    view = Silent()
    async with running(sandbox, make_bot()) as bot:
        channel = bot.get_channel(guild.channel_named("general").id)
        assert isinstance(channel, discord.TextChannel)
        await channel.send("pick one", view=view)
        message = await sandbox.wait_for_message("general", guild=guild)
        handle = sandbox.press_button(message, "silent", guild.owner_id)
        await asyncio.wait_for(view.pressed.wait(), 5)
    owner = str(guild.owner_id)
    bad = {"content": "picked", "allowed_mentions": {"parse": ["users"], "users": [owner]}}
    status, answer = await _callback(handle, sandbox, {"type": 7, "data": bad})
    assert status == 400 and "allowed_mentions" in answer["errors"]
    empty_field = {"embeds": [{"title": "t", "fields": [{"name": "n", "value": ""}]}]}
    status, answer = await _callback(handle, sandbox, {"type": 7, "data": empty_field})
    assert status == 400 and "embeds.0.fields.0.value" in answer["errors"]
    assert message.content == "pick one" and not handle.acknowledged
