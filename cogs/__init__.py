"""Thin discord.py cogs: Discord events and slash commands in, service calls out."""

from __future__ import annotations

from discord.ext import commands

from bot.container import Container


async def load_cogs(bot: commands.Bot, container: Container) -> None:
    from cogs.dlq import DeadLetterCog
    from cogs.guild_setup import GuildSetupCog
    from cogs.lifecycle import LifecycleCog
    from cogs.members import MemberCog

    await bot.add_cog(LifecycleCog(container))
    await bot.add_cog(MemberCog(container))
    await bot.add_cog(GuildSetupCog(container))
    await bot.add_cog(DeadLetterCog(container))
