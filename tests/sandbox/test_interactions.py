"""Slash commands, permission hiding, autocomplete, buttons and the reply path."""

from __future__ import annotations

import asyncio

import aiohttp
import discord
import pytest

from sandbox import CommandRefused, Sandbox, SandboxConfig

from .support import bot_with_commands, dlq_group, make_bot, running

pytestmark = pytest.mark.asyncio


async def test_synced_commands_are_stored_with_ids(sandbox, guild):
    async with running(sandbox, bot_with_commands(guild, dlq_group())):
        (dlq,) = sandbox.commands(guild)
        assert dlq["name"] == "dlq" and dlq["guild_id"] == str(guild.id)
        assert dlq["default_member_permissions"] == str(
            discord.Permissions(manage_guild=True).value
        )
        assert sorted(o["name"] for o in dlq["options"]) == ["jobs", "retry"]
        assert sandbox.commands() == []


async def test_subcommand_reply_is_ephemeral_and_recorded(sandbox, guild):
    async with running(sandbox, bot_with_commands(guild, dlq_group())):
        handle = sandbox.slash_command(
            guild, guild.owner_id, "dlq retry", {"job": 7, "force": True}
        )
        reply = await handle.wait_reply()
        assert reply.type == 4
        assert reply.message is not None
        assert reply.message.content == "retrying 7 force=True"
        assert reply.message.ephemeral
        # Ephemeral replies are not part of the channel's visible history.
        assert sandbox.messages("general", guild) == []
        assert sandbox.messages("general", guild, include_ephemeral=True) == [reply.message]
        callback = sandbox.calls[-1]
        assert callback.route == "/interactions/{interaction_id}/{interaction_token}/callback"
        assert not callback.authorized and callback.status == 200


async def test_nested_group_with_user_option(sandbox, guild):
    member = sandbox.member_join(guild, 4242, "alice", pending=False)
    async with running(sandbox, bot_with_commands(guild, dlq_group())):
        handle = sandbox.slash_command(
            guild, guild.owner_id, "dlq jobs show", {"name": "alpha", "user": member.id}
        )
        message = await handle.wait_message()
        assert message.content == "job alpha for alice"
        options = handle.payload["data"]["options"]
        assert options[0]["type"] == 2 and options[0]["options"][0]["type"] == 1
        assert handle.payload["data"]["resolved"]["users"][str(member.id)]["username"] == "alice"


async def test_hidden_command_is_refused_until_granted(sandbox, guild):
    plain = sandbox.member_join(guild, 5001, "plain", pending=False)
    staff_role = guild.role_named("Staff")
    staff = sandbox.member_join(guild, 5002, "staff", pending=False, roles=[staff_role.id])
    async with running(sandbox, bot_with_commands(guild, dlq_group())):
        with pytest.raises(CommandRefused, match="hidden"):
            sandbox.slash_command(guild, plain.id, "dlq retry", {"job": 1})
        ok = sandbox.slash_command(guild, staff.id, "dlq retry", {"job": 2})
        assert (await ok.wait_message()).content.startswith("retrying 2")

        sandbox.grant_command(guild, "dlq", plain.id)
        granted = sandbox.slash_command(guild, plain.id, "dlq retry", {"job": 3})
        assert (await granted.wait_message()).content.startswith("retrying 3")
        # The interaction carries the member's real permissions: the bot must check them itself.
        perms = int(granted.payload["member"]["permissions"])
        assert not discord.Permissions(perms).manage_guild


async def test_bad_options_are_refused_like_the_client_would(sandbox, guild):
    async with running(sandbox, bot_with_commands(guild, dlq_group())):
        with pytest.raises(CommandRefused, match="missing required"):
            sandbox.slash_command(guild, guild.owner_id, "dlq retry")
        with pytest.raises(CommandRefused, match="integer"):
            sandbox.slash_command(guild, guild.owner_id, "dlq retry", {"job": "seven"})
        with pytest.raises(CommandRefused, match="needs a subcommand"):
            sandbox.slash_command(guild, guild.owner_id, "dlq")
        with pytest.raises(CommandRefused, match="not synced"):
            sandbox.slash_command(guild, guild.owner_id, "nope")


async def test_autocomplete_returns_the_bots_choices(sandbox, guild):
    async with running(sandbox, bot_with_commands(guild, dlq_group())):
        choices = await sandbox.autocomplete(
            guild, guild.owner_id, "dlq jobs show", {"name": "al"}, focused="name"
        )
        assert [c["value"] for c in choices] == ["alpha", "alphabet"]
        none = await sandbox.autocomplete(
            guild, guild.owner_id, "dlq jobs show", {"name": "zz"}, focused="name"
        )
        assert none == []  # an empty answer is an answer, not a timeout


class Confirm(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=30)
        self.pressed_by: list[int] = []

    @discord.ui.button(label="Confirm", custom_id="confirm", style=discord.ButtonStyle.danger)
    async def confirm(
        self, interaction: discord.Interaction, button: discord.ui.Button[Confirm]
    ) -> None:
        self.pressed_by.append(interaction.user.id)
        await interaction.response.edit_message(content="confirmed", view=None)


async def test_button_press_reaches_the_view(sandbox, guild):
    view = Confirm()
    bot = bot_with_commands(guild)

    @bot.tree.command(name="purge", description="Purge", guild=discord.Object(guild.id))
    async def purge(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("sure?", view=view)

    async with running(sandbox, bot):
        asked = sandbox.slash_command(guild, guild.owner_id, "purge")
        prompt = await asked.wait_message()
        assert prompt.custom_ids() == ["confirm"]
        assert not prompt.ephemeral and sandbox.messages("general", guild) == [prompt]

        pressed = sandbox.press_button(asked, "confirm", guild.owner_id)
        reply = await pressed.wait_reply()
        assert reply.type == 7
        assert view.pressed_by == [guild.owner_id]
        assert prompt.content == "confirmed" and prompt.components == []
        with pytest.raises(CommandRefused):
            sandbox.press_button(asked, "confirm", guild.owner_id)


async def test_defer_then_followup_replaces_the_thinking_message(sandbox, guild):
    bot = bot_with_commands(guild)
    release = asyncio.Event()

    @bot.tree.command(name="slow", description="Slow", guild=discord.Object(guild.id))
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await release.wait()
        await interaction.followup.send("done")
        await interaction.followup.send("and one more")

    async with running(sandbox, bot):
        handle = sandbox.slash_command(guild, guild.owner_id, "slow")
        reply = await handle.wait_reply()
        assert reply.type == 5 and handle.original is not None and handle.original.loading
        release.set()
        followups = await handle.wait_followups(1)
        assert handle.original.content == "done" and not handle.original.loading
        assert [m.content for m in followups] == ["and one more"]


async def test_second_response_is_refused_with_40060(sandbox, guild):
    bot = bot_with_commands(guild)
    errors: list[Exception] = []

    @bot.tree.command(name="twice", description="Twice", guild=discord.Object(guild.id))
    async def twice(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("one")
        try:
            await interaction.followup.send("two")
            # Past discord.py's own is_done() guard, to reach the sandbox: a second
            # InteractionResponse of the same interaction has sent nothing yet.
            await discord.InteractionResponse(interaction).send_message("three")
        except discord.HTTPException as exc:
            errors.append(exc)

    async with running(sandbox, bot):
        handle = sandbox.slash_command(guild, guild.owner_id, "twice")
        await handle.wait_followups(1)
        await sandbox.wait_until(lambda: errors)
        assert isinstance(errors[0], discord.HTTPException) and errors[0].code == 40060


async def test_late_initial_response_is_unknown_interaction():
    async with Sandbox(SandboxConfig(interaction_ack_timeout=0.0)) as sandbox:
        guild = sandbox.create_guild()
        bot = bot_with_commands(guild)
        failures: list[discord.NotFound] = []

        @bot.tree.command(name="late", description="Late", guild=discord.Object(guild.id))
        async def late(interaction: discord.Interaction) -> None:
            try:
                await interaction.response.send_message("too late")
            except discord.NotFound as exc:
                failures.append(exc)

        async with running(sandbox, bot):
            sandbox.slash_command(guild, guild.owner_id, "late")
            await sandbox.wait_until(lambda: failures)
            assert failures[0].code == 10062


class Welcome(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=30)
        self.accepted: list[int] = []

    @discord.ui.button(label="Accept rules", custom_id="accept-rules")
    async def accept(
        self, interaction: discord.Interaction, button: discord.ui.Button[Welcome]
    ) -> None:
        self.accepted.append(interaction.user.id)
        await interaction.response.send_message("welcome aboard", ephemeral=True)


async def test_button_on_a_channel_message(sandbox, guild):
    view = Welcome()
    bot = make_bot()

    @bot.event
    async def on_member_join(member: discord.Member) -> None:
        channel = member.guild.system_channel
        assert channel is not None
        await channel.send(f"hello {member.mention}", view=view)

    async with running(sandbox, bot):
        newcomer = sandbox.member_join(guild, 8080, "newcomer")
        greeting = await sandbox.wait_for_message("general", guild=guild)
        assert greeting.mentions == [newcomer.id]
        pressed = sandbox.press_button(greeting, "accept-rules", newcomer.id)
        message = await pressed.wait_message()
        assert message.ephemeral and message.content == "welcome aboard"
        assert view.accepted == [newcomer.id]


async def test_raw_callback_answers(sandbox, guild):
    bot = bot_with_commands(guild)
    seen = asyncio.Event()

    @bot.tree.command(name="silent", description="Never answers", guild=discord.Object(guild.id))
    async def silent(interaction: discord.Interaction) -> None:
        seen.set()

    async with running(sandbox, bot):
        handle = sandbox.slash_command(guild, guild.owner_id, "silent")
        await asyncio.wait_for(seen.wait(), 5)
    url = f"{sandbox.api_url}/interactions/{handle.id}/{handle.token}/callback"
    async with aiohttp.ClientSession() as http:
        reply = {"type": 4, "data": {"content": "by hand"}}
        async with http.post(url, json=reply) as resp:
            assert resp.status == 204  # no ?with_response: Discord answers 204
        async with http.post(url + "?with_response=true", json=reply) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == 40060
        async with http.post(url.replace(handle.token, "forged"), json={"type": 1}) as resp:
            assert resp.status == 404 and (await resp.json())["code"] == 10062
    assert handle.original is not None and handle.original.content == "by hand"
