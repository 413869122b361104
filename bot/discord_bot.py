"""The discord.py bot: intents, cogs, command sync and the outbox worker it runs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
from discord.ext import commands

from bot.container import Container
from bot.delivery import DiscordDeliverer
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


class _Lifeline:
    """Behaviour shared by the plain and the sharded bot."""

    container: Container
    worker: OutboxWorker
    _stop: asyncio.Event
    _worker_task: asyncio.Task[None] | None

    def _init_lifeline(self, container: Container, worker_id: str | None) -> None:
        self.container = container
        settings = container.settings
        self.worker = OutboxWorker(
            container.db, DiscordDeliverer(self), container.metrics,  # type: ignore[arg-type]
            WorkerPolicy(lock_seconds=settings.outbox_lock_seconds,
                         poll_seconds=settings.outbox_poll_seconds,
                         max_attempts=settings.outbox_max_attempts,
                         retention_days=settings.retention_days),
            worker_id=worker_id)
        self._stop = asyncio.Event()
        self._worker_task = None

    async def _setup_lifeline(self) -> None:
        from cogs import load_cogs

        bot: commands.Bot = self  # type: ignore[assignment]
        await load_cogs(bot, self.container)
        synced = await bot.tree.sync()
        log.info("synced %d application commands", len(synced))
        self._worker_task = asyncio.create_task(self.worker.run(self._stop),
                                                name="outbox-worker")

    async def _close_lifeline(self) -> None:
        self._stop.set()
        if self._worker_task is not None:
            try:
                await asyncio.wait_for(self._worker_task, timeout=10)
            except TimeoutError:
                self._worker_task.cancel()

    @property
    def gateway_connected(self) -> bool:
        bot: discord.Client = self  # type: ignore[assignment]
        return bot.is_ready() and not bot.is_closed()


class LifelineBot(_Lifeline, commands.Bot):
    def __init__(self, container: Container, *, worker_id: str | None = None,
                 **options: Any) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=lifeline_intents(),
                         help_command=None, **options)
        self._init_lifeline(container, worker_id)

    async def setup_hook(self) -> None:
        await self._setup_lifeline()

    async def close(self) -> None:
        await self._close_lifeline()
        await super().close()


class ShardedLifelineBot(_Lifeline, commands.AutoShardedBot):
    def __init__(self, container: Container, *, worker_id: str | None = None,
                 **options: Any) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=lifeline_intents(),
                         help_command=None, **options)
        self._init_lifeline(container, worker_id)

    async def setup_hook(self) -> None:
        await self._setup_lifeline()

    async def close(self) -> None:
        await self._close_lifeline()
        await super().close()


def build_bot(container: Container, *, shard_count: int | None = None,
              shard_ids: list[int] | None = None, worker_id: str | None = None,
              **options: Any) -> LifelineBot | ShardedLifelineBot:
    if shard_count is not None:
        return ShardedLifelineBot(container, shard_count=shard_count, shard_ids=shard_ids,
                                  worker_id=worker_id, **options)
    return LifelineBot(container, worker_id=worker_id, **options)
