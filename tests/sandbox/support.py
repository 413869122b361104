"""What sandbox tests share: a way to run a real discord.py client on the sandbox, and
waiting for what it caches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from sandbox import Guild, Sandbox, client_overrides

ClientT = TypeVar("ClientT", bound=discord.Client)

INTENTS = discord.Intents(guilds=True, members=True, moderation=True, guild_messages=True)


def make_bot(intents: discord.Intents = INTENTS) -> commands.Bot:
    return commands.Bot(command_prefix="!", intents=intents, guild_ready_timeout=0.05)


@contextlib.asynccontextmanager
async def running(
    sandbox: Sandbox, client: ClientT, *, timeout: float = 10.0
) -> AsyncIterator[ClientT]:
    """Start ``client`` against the sandbox, wait for on_ready, close it afterwards.

    A client whose ``start()`` ended on its own (a parser KeyError, a refused
    login) fails the test with that error.
    """
    with client_overrides(sandbox.base_url):
        task = asyncio.create_task(client.start(sandbox.token))
        ready = asyncio.create_task(client.wait_until_ready())
        done, _ = await asyncio.wait(
            {task, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        try:
            if task in done:
                task.result()
                raise AssertionError("client.start() returned before the client was ready")
            if ready not in done:
                raise TimeoutError("client never became ready")
            yield client
            if task.done():
                task.result()
                raise AssertionError("client.start() ended while the test ran")
        finally:
            ready.cancel()
            await client.close()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def cached_guild(client: discord.Client, guild_id: int) -> discord.Guild:
    found = client.get_guild(guild_id)
    assert found is not None, f"guild {guild_id} is not in the client's cache"
    return found


def text_channel(client: discord.Client, channel_id: int) -> discord.TextChannel:
    found = client.get_channel(channel_id)
    assert isinstance(found, discord.TextChannel), f"no text channel {channel_id} in the cache"
    return found


def cached_member(client: discord.Client, guild_id: int, user_id: int) -> discord.Member:
    found = cached_guild(client, guild_id).get_member(user_id)
    assert found is not None, f"member {user_id} is not in the client's cache"
    return found


def expect(
    client: discord.Client,
    event: str,
    check: Callable[..., bool] | None = None,
    timeout: float = 5.0,
) -> asyncio.Task[Any]:
    """Start waiting for a client event now, before the action that causes it.

    Gateway events caused by a REST call can reach the client before the REST
    answer does, so a wait started after the call could miss them.
    """
    return asyncio.create_task(client.wait_for(event, check=check, timeout=timeout))


def dlq_group(*, hidden: bool = True) -> app_commands.Group:
    """``/dlq retry job:int`` and ``/dlq jobs show name:str`` (a group in a group)."""
    permissions = discord.Permissions(manage_guild=True) if hidden else None
    group = app_commands.Group(
        name="dlq", description="Dead letters", default_permissions=permissions
    )
    jobs = app_commands.Group(name="jobs", description="Jobs", parent=group)

    @group.command(name="retry", description="Retry a dead letter")
    async def retry(interaction: discord.Interaction, job: int, force: bool = False) -> None:
        await interaction.response.send_message(f"retrying {job} force={force}", ephemeral=True)

    @jobs.command(name="show", description="Show a job")
    async def show(
        interaction: discord.Interaction, name: str, user: discord.Member | None = None
    ) -> None:
        who = "nobody" if user is None else user.name
        await interaction.response.send_message(f"job {name} for {who}", ephemeral=True)

    @show.autocomplete("name")
    async def show_names(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        names = ["alpha", "beta", "alphabet"]
        return [app_commands.Choice(name=n, value=n) for n in names if n.startswith(current)]

    return group


def bot_with_commands(guild: Guild, *groups: app_commands.Group) -> commands.Bot:
    """A bot whose setup_hook syncs ``groups`` to ``guild``."""
    bot = make_bot()
    target = discord.Object(guild.id)
    for group in groups:
        bot.tree.add_command(group, guild=target)

    async def setup_hook() -> None:
        await bot.tree.sync(guild=target)

    bot.setup_hook = setup_hook  # type: ignore[method-assign]
    return bot
