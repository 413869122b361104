"""Thin discord.py cogs: Discord events and slash commands in, service calls out."""

from __future__ import annotations

from discord.ext import commands

from domain.services import Services
from domain.spool import EventSpool


async def load_cogs(bot: commands.Bot, services: Services, spool: EventSpool) -> None:
    from cogs.dlq import DeadLetterCog
    from cogs.guild_setup import GuildSetupCog
    from cogs.lifecycle import LifecycleCog
    from cogs.members import MemberCog

    await bot.add_cog(LifecycleCog(services, spool, bot))
    await bot.add_cog(MemberCog(services))
    await bot.add_cog(GuildSetupCog(services))
    await bot.add_cog(DeadLetterCog(services))
