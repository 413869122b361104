"""Bringing the demo's bot up: ready, or one line saying why not."""

from __future__ import annotations

import asyncio

import discord

from domain.ingest.log import LogInUse


class DemoStartError(Exception):
    """The bot did not come up: one line for the person who started the demo."""

    def __init__(self, message: str, *, log_in_use: bool = False) -> None:
        super().__init__(message)
        self.log_in_use = log_in_use  # another bot process holds DATA_DIR's ingest log


async def until_ready(bot: discord.Client, bot_task: asyncio.Task[None]) -> None:
    """The bot is ready, or why not: its start() ending (the ingest log held by another
    process, say) is reported at once rather than after the timeout."""
    ready = asyncio.create_task(bot.wait_until_ready())
    done, _ = await asyncio.wait({ready, bot_task}, timeout=30,
                                 return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if ready in done:
        return
    error = bot_task.exception() if bot_task.done() and not bot_task.cancelled() else None
    if error is None:
        raise DemoStartError("the bot did not connect to the sandbox within 30 s")
    raise DemoStartError(f"the bot did not start: {error}",
                         log_in_use=isinstance(error, LogInUse))
