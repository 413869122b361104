"""The discord.py bot: intents, cogs, command sync and the outbox worker it runs."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import discord
from discord.ext import commands

from bot.container import Container
from bot.delivery import DiscordDeliverer
from bot.formatting import ConsoleLinks
from domain.console_sessions import ConsoleSessions
from domain.ingest.legacy import move_legacy_spool
from domain.ingest.log import IngestLog, waiting_in
from domain.outbox import OutboxWorker, WorkerPolicy

log = logging.getLogger(__name__)


# Lifeline has no voice features: no warning about missing voice libraries at start-up.
discord.VoiceClient.warn_nacl = False
discord.VoiceClient.warn_dave = False


def lifeline_intents() -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.members = True  # privileged: join, leave, member updates
    intents.moderation = True  # bans and unbans
    return intents


class LifelineMixin:
    """The body of both bot classes (plain and sharded): Lifeline's cogs, command sync and
    outbox worker on top of whichever discord.py client it is mixed into."""

    container: Container
    worker: OutboxWorker

    def __init__(self, container: Container, *, worker_id: str | None = None,
                 **options: Any) -> None:
        super().__init__(command_prefix=commands.when_mentioned,  # type: ignore[call-arg]
                         intents=lifeline_intents(), help_command=None, **options)
        self.container = container
        settings = container.settings
        links = ConsoleLinks(settings.console_base_url) \
            if settings.console_off_reason() is None else None
        self.worker = OutboxWorker(
            container.services.stores.outbox,
            DiscordDeliverer(self, links),  # type: ignore[arg-type]
            container.metrics,
            WorkerPolicy(lock_seconds=settings.outbox_lock_seconds,
                         poll_seconds=settings.outbox_poll_seconds,
                         max_attempts=settings.outbox_max_attempts,
                         retention_days=settings.retention_days,
                         dead_letter_claim_seconds=settings.dead_letter_claim_seconds),
            worker_id=worker_id, dead_letters=container.services.stores.dead_letter_writes,
            overview=container.services.overview,
            sessions=ConsoleSessions(container.services.stores.console_sessions))
        self.stopping = asyncio.Event()
        self.worker_task: asyncio.Task[None] | None = None

    async def setup_hook(self) -> None:
        from cogs import load_cogs

        bot: commands.Bot = self  # type: ignore[assignment]
        settings = self.container.settings
        shard_ids = getattr(self, "shard_ids", None)
        directory = self.container.ingest_directory(shard_ids)
        warn_about_other_logs(directory)
        ingest_log = IngestLog(directory, settings.spool_max_bytes)
        await load_cogs(bot, self.container.services, ingest_log,
                        ingest_workers=settings.ingest_workers,
                        ingest_batch_size=settings.ingest_batch_size)
        lifecycle = bot.get_cog("LifecycleCog")
        self.container.ingestion = getattr(lifecycle, "ingestion", None)
        if self.container.ingestion is not None:
            await move_legacy_spool(settings.data_dir / "spool", self.container.ingestion)
        synced = await bot.tree.sync()
        log.info("synced %d application commands", len(synced))
        self.worker_task = asyncio.create_task(self.worker.run(self.stopping),
                                               name="outbox-worker")

    async def close(self) -> None:
        self.stopping.set()
        if self.worker_task is not None:
            try:
                await asyncio.wait_for(self.worker_task, timeout=10)
            except TimeoutError:
                self.worker_task.cancel()
        await super().close()  # type: ignore[misc]

    @property
    def gateway_connected(self) -> bool:
        bot: discord.Client = self  # type: ignore[assignment]
        return bot.is_ready() and not bot.is_closed()


def warn_about_other_logs(mine: Path) -> None:
    """Events left in the ingest log of another shard set (the shards were re-split) are
    applied only by a process that runs that set again: say so, loudly."""
    if not mine.parent.is_dir():
        return
    for other in mine.parent.iterdir():
        if other != mine and other.is_dir() and (waiting := waiting_in(other)):
            log.error("the ingest log %s holds %d bytes of events not yet applied, and this "
                      "process runs other shards: run a process with those shards once, or "
                      "rely on the reconcile at connect (it brings every member back to what "
                      "Discord shows)", other, waiting)


class LifelineBot(LifelineMixin, commands.Bot):
    pass


class ShardedLifelineBot(LifelineMixin, commands.AutoShardedBot):
    pass


def build_bot(container: Container, *, shard_count: int | None = None,
              shard_ids: list[int] | None = None, worker_id: str | None = None,
              **options: Any) -> LifelineBot | ShardedLifelineBot:
    if shard_count is not None:
        return ShardedLifelineBot(container, shard_count=shard_count, shard_ids=shard_ids,
                                  worker_id=worker_id, **options)
    return LifelineBot(container, worker_id=worker_id, **options)
