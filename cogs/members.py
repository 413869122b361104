"""`/verify` for members, `/member ...` for staff."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common import (
    GUILD_ONLY,
    acknowledge,
    answer,
    guild_id_of,
    on_command_error,
    require_staff,
)
from domain.commands import TransitionCommand
from domain.errors import TransitionDeadLettered
from domain.lifecycle import Operation, Source, TransitionNotAllowed
from domain.services import Services
from domain.vocabulary import state_name

log = logging.getLogger(__name__)

Interaction = discord.Interaction[Any]


class MemberCog(commands.Cog):
    member = app_commands.Group(
        name="member", description="Staff: look at and move a member's lifecycle",
        guild_only=True, allowed_contexts=GUILD_ONLY,
        default_permissions=discord.Permissions(manage_guild=True))

    def __init__(self, services: Services) -> None:
        # Staff commands write and read on the interactive pool (when there is one).
        self.transitions = services.staff_transitions
        self.guilds = services.guilds

    async def interaction_check(self, interaction: Interaction) -> bool:
        return await acknowledge(interaction)

    async def cog_app_command_error(self, interaction: Interaction,
                                    error: app_commands.AppCommandError) -> None:
        await on_command_error(interaction, error)

    async def _run(self, interaction: Interaction, user_id: int, op: Operation,
                   source: Source, reason: str | None) -> str:
        cmd = TransitionCommand(guild_id=guild_id_of(interaction), user_id=user_id,
                                operation=op, source=source, actor_id=interaction.user.id,
                                idempotency_key=f"cmd:{interaction.id}", reason=reason)
        try:
            result = await self.transitions.apply(cmd)
        except TransitionNotAllowed as exc:
            return f"❌ {exc}"
        except TransitionDeadLettered as exc:
            return f"⚠️ {exc}"
        if result.already_there:
            return (f"✅ <@{user_id}> is already {result.member.state.value} (someone else "
                    f"did it first; version {result.member.version})")
        return (f"✅ <@{user_id}>: `{op.value}` {state_name(result.from_state)} → "
                f"{result.member.state.value} (version {result.member.version})")

    # ---- member command ----------------------------------------------------------------

    @app_commands.command(name="verify", description="Ask staff to verify you")
    @app_commands.guild_only()
    async def verify_me(self, interaction: Interaction) -> None:
        await self.guilds.require(guild_id_of(interaction))
        text = await self._run(interaction, interaction.user.id,
                               Operation.REQUEST_VERIFICATION, Source.BOT,
                               "asked to be verified")
        if text.startswith("✅"):
            text = "✅ Your verification request is in; staff or the web app will confirm it."
        await answer(interaction, text)

    # ---- staff commands ----------------------------------------------------------------

    @member.command(name="show", description="State, version and the last 10 transitions")
    async def show(self, interaction: Interaction, user: discord.User) -> None:
        await require_staff(interaction, self.guilds)
        guild_id = guild_id_of(interaction)
        current = await self.transitions.get_member(guild_id, user.id)
        if current is None:
            await answer(interaction, f"<@{user.id}> has no lifecycle record in this server")
            return
        history = await self.transitions.history(guild_id, user.id, limit=10)
        embed = discord.Embed(title=f"Member {user}",
                              description=f"state **{current.state.value}**, "
                                          f"version {current.version}")
        lines = [f"v{h.version} `{h.operation.value}` {state_name(h.from_state)} → "
                 f"{h.to_state.value} ({h.source.value}"
                 + (f" by <@{h.actor_id}>" if h.actor_id else "") + ")"
                 for h in history]
        embed.add_field(name="Last transitions", value="\n".join(lines)[:1024] or "-",
                        inline=False)
        await answer(interaction, embed=embed)

    async def _staff_op(self, interaction: Interaction, user: discord.User, op: Operation,
                        reason: str | None) -> None:
        await require_staff(interaction, self.guilds)
        await answer(interaction, await self._run(interaction, user.id, op, Source.STAFF,
                                                  reason))

    @member.command(name="verify", description="Verify a member (from verification_pending)")
    async def verify(self, interaction: Interaction, user: discord.User,
                     reason: app_commands.Range[str, 1, 500] | None = None) -> None:
        await self._staff_op(interaction, user, Operation.VERIFY, reason)

    @member.command(name="reject", description="Reject a pending verification")
    async def reject(self, interaction: Interaction, user: discord.User,
                     reason: app_commands.Range[str, 1, 500] | None = None) -> None:
        await self._staff_op(interaction, user, Operation.REJECT, reason)

    @member.command(name="reopen", description="Reopen a rejected verification")
    async def reopen(self, interaction: Interaction, user: discord.User,
                     reason: app_commands.Range[str, 1, 500] | None = None) -> None:
        await self._staff_op(interaction, user, Operation.REOPEN, reason)

    @member.command(name="reverify", description="Ask a verified member to verify again")
    async def reverify(self, interaction: Interaction, user: discord.User,
                       reason: app_commands.Range[str, 1, 500] | None = None) -> None:
        await self._staff_op(interaction, user, Operation.REVERIFY, reason)

    @member.command(name="kick", description="Kick a member and record it")
    async def kick(self, interaction: Interaction, user: discord.User,
                   reason: app_commands.Range[str, 1, 500] | None = None) -> None:
        await require_staff(interaction, self.guilds)
        text = await self._run(interaction, user.id, Operation.KICK, Source.STAFF, reason)
        if text.startswith("✅") and interaction.guild is not None:
            try:
                await interaction.guild.kick(discord.Object(user.id),
                                             reason=f"Lifeline, by {interaction.user.id}")
            except discord.HTTPException as exc:
                text += (f"\n⚠️ recorded as kicked, but Discord refused the kick "
                         f"({exc.status}): kick them by hand")
        await answer(interaction, text)
