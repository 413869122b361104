"""Thin discord.py cogs: Discord events and slash commands in, service calls out."""

from __future__ import annotations

from discord.ext import commands

from domain.ingest.log import IngestLog
from domain.services import Services


async def load_cogs(bot: commands.Bot, services: Services, ingest_log: IngestLog, *,
                    ingest_workers: int = 4, ingest_batch_size: int = 256) -> None:
    from cogs.dlq import DeadLetterCog
    from cogs.guild_setup import GuildSetupCog
    from cogs.lifecycle import LifecycleCog
    from cogs.members import MemberCog

    await bot.add_cog(LifecycleCog(services, ingest_log, bot, workers=ingest_workers,
                                   batch_size=ingest_batch_size))
    await bot.add_cog(MemberCog(services))
    await bot.add_cog(GuildSetupCog(services))
    await bot.add_cog(DeadLetterCog(services))
