"""Who is staff where, for a console served by an API replica (`python -m bot api`), which
has no gateway cache: the bot's own view through Discord's REST API with the bot token
(`GET /guilds/{g}` for the owner and the roles' permissions, `GET /guilds/{g}/members/{u}`
for the member's roles), over the guilds set up for Lifeline. Cached a minute; a write asks
afresh."""

from __future__ import annotations

import logging
import time
from typing import Any

import aiohttp

from bot.console.oauth import DISCORD_API
from bot.console.staff import CACHE_SECONDS, StaffGuild, remember
from domain.guilds import GuildSettingsService
from domain.records import GuildConfig

log = logging.getLogger(__name__)
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
TIMEOUT = aiohttp.ClientTimeout(total=10)


def staff_from(guild: dict[str, Any], member: dict[str, Any], config: GuildConfig) -> bool:
    """The owner, a member with Administrator or Manage Server through any role (@everyone
    included), or one with a staff role."""
    user_id = str(member.get("user", {}).get("id", ""))
    if str(guild.get("owner_id")) == user_id:
        return True
    held = {str(r) for r in member.get("roles", [])} | {str(guild.get("id"))}
    if any(str(role) in {str(s) for s in config.staff_role_ids} for role in held):
        return True
    permissions = 0
    for role in guild.get("roles", []):
        if str(role.get("id")) in held:
            permissions |= int(role.get("permissions", 0))
    return bool(permissions & (ADMINISTRATOR | MANAGE_GUILD))


class RestStaff:
    def __init__(self, guilds: GuildSettingsService, bot_token: str,
                 api_base: str | None = None) -> None:
        self.guilds = guilds
        self._auth = {"Authorization": f"Bot {bot_token}"}
        self.api_base = (api_base or DISCORD_API).rstrip("/")
        self._cache: dict[tuple[int, int], tuple[bool, str, float]] = {}

    async def staff_guilds(self, user_id: int) -> list[StaffGuild]:
        found = []
        for guild_id in await self.guilds.set_up_ids():
            staff, name = await self._judge_cached(user_id, guild_id)
            if staff:
                found.append(StaffGuild(guild_id, name))
        return sorted(found, key=lambda g: g.name.lower())

    async def is_staff(self, user_id: int, guild_id: int, *, fresh: bool = False) -> bool:
        return (await self._judge_cached(user_id, guild_id, fresh=fresh))[0]

    async def _judge_cached(self, user_id: int, guild_id: int, *,
                            fresh: bool = False) -> tuple[bool, str]:
        key = (user_id, guild_id)
        cached = self._cache.get(key)
        if not fresh and cached is not None and cached[2] > time.monotonic():
            return cached[0], cached[1]
        staff, name, definitive = await self._judge(user_id, guild_id)
        if definitive:  # a 429, a 5xx or no answer is not remembered as "not staff"
            remember(self._cache, key, (staff, name, time.monotonic() + CACHE_SECONDS))
        return staff, name

    async def _judge(self, user_id: int, guild_id: int) -> tuple[bool, str, bool]:
        """(staff, the guild's name, whether the answer is Discord's last word: a 200 or a
        404, not a 429, a 5xx or silence)."""
        config = await self.guilds.get(guild_id)
        if config is None:
            return False, str(guild_id), True
        try:
            async with aiohttp.ClientSession(timeout=TIMEOUT, headers=self._auth) as http:
                async with http.get(f"{self.api_base}/guilds/{guild_id}") as r:
                    if r.status != 200:
                        return False, str(guild_id), r.status in (403, 404)
                    guild = await r.json()
                async with http.get(f"{self.api_base}/guilds/{guild_id}/members/{user_id}"
                                    ) as r:
                    if r.status != 200:  # 404: not a member
                        return False, str(guild.get("name", guild_id)), r.status == 404
                    member = await r.json()
        except (aiohttp.ClientError, TimeoutError):
            log.warning("console: Discord did not answer who is staff in guild %s", guild_id)
            return False, str(guild_id), False
        return staff_from(guild, member, config), str(guild.get("name", guild_id)), True
