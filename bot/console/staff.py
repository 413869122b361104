"""Who is staff where, for the console: judged by Lifeline from the bot's own view of the
member (the gateway cache of the bot in this process), like every slash command, never from
what the browser says. Answers are cached at most a minute; a write asks afresh."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import discord

from domain.guilds import GuildSettingsService
from domain.records import GuildConfig

CACHE_SECONDS = 60.0
CACHE_MAX = 10_000  # (user, guild) answers kept; past it the expired ones are dropped


@dataclass(frozen=True)
class StaffGuild:
    guild_id: int
    name: str


class StaffDirectory(Protocol):
    async def staff_guilds(self, user_id: int) -> list[StaffGuild]:
        """The guilds set up for Lifeline where the user is staff."""
        ...

    async def is_staff(self, user_id: int, guild_id: int, *, fresh: bool = False) -> bool:
        ...


def remember(cache: dict[tuple[int, int], Any], key: tuple[int, int], value: Any) -> None:
    """Keep an answer; a full cache first drops its expired answers (the last element of
    each value is its expiry), then the oldest, so guessed guild ids cannot grow it."""
    if len(cache) >= CACHE_MAX:
        now = time.monotonic()
        for old in [k for k, v in cache.items() if v[-1] <= now]:
            del cache[old]
        while len(cache) >= CACHE_MAX:
            del cache[next(iter(cache))]
    cache[key] = value


def member_is_staff(member: discord.Member, config: GuildConfig) -> bool:
    """Staff = Manage Server, or one of the guild's staff roles (as `/dlq` judges it)."""
    if member.guild_permissions.manage_guild:
        return True
    return any(role.id in config.staff_role_ids for role in member.roles)


class GatewayStaff:
    """From the bot's gateway cache in this process (members intent)."""

    def __init__(self, client: discord.Client, guilds: GuildSettingsService) -> None:
        self.client = client
        self.guilds = guilds
        self._cache: dict[tuple[int, int], tuple[bool, float]] = {}

    async def staff_guilds(self, user_id: int) -> list[StaffGuild]:
        found = []
        for guild in sorted(self.client.guilds, key=lambda g: g.name.lower()):
            if await self.is_staff(user_id, guild.id):
                found.append(StaffGuild(guild.id, guild.name))
        return found

    async def is_staff(self, user_id: int, guild_id: int, *, fresh: bool = False) -> bool:
        key = (user_id, guild_id)
        cached = self._cache.get(key)
        if not fresh and cached is not None and cached[1] > time.monotonic():
            return cached[0]
        answer = await self._judge(user_id, guild_id)
        remember(self._cache, key, (answer, time.monotonic() + CACHE_SECONDS))
        return answer

    async def _judge(self, user_id: int, guild_id: int) -> bool:
        guild = self.client.get_guild(guild_id)
        member = guild.get_member(user_id) if guild is not None else None
        if member is None:
            return False
        config = await self.guilds.get(guild_id)
        return config is not None and member_is_staff(member, config)
