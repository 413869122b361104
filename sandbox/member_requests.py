"""Guild members as Discord hands them to a bot: which guilds are "large" (sent without
their member list in GUILD_CREATE), and the GUILD_MEMBERS_CHUNK pages that answer a
REQUEST_GUILD_MEMBERS (op 8)."""

from __future__ import annotations

from typing import Any

from . import payloads
from .models import Guild

JSON = dict[str, Any]

# GUILD_MEMBERS_CHUNK pages hold at most this many members (Discord's limit).
CHUNK_SIZE = 1000


def large_threshold(value: object) -> int:
    """IDENTIFY's large_threshold: 50 when absent, Discord's range 50..250."""
    if isinstance(value, bool) or not isinstance(value, int):
        return 50
    return min(max(value, 50), 250)


def member_chunks(guild: Guild, request: JSON) -> list[JSON]:
    """The GUILD_MEMBERS_CHUNK payloads answering `request` (op 8's `d`) for `guild`: the
    members asked for by id (the unknown ones in the first page's `not_found`), or those
    whose name starts with `query` (at most `limit`, 0 = all), in numbered pages of at most
    CHUNK_SIZE members, in order."""
    wanted = [int(u) for u in request.get("user_ids") or []]
    if wanted:
        members = [guild.members[u] for u in wanted if u in guild.members]
        missing = [u for u in wanted if u not in guild.members]
    else:
        query = str(request.get("query") or "").lower()
        limit = int(request.get("limit") or 0)
        members = [m for m in guild.members.values()
                   if m.user.username.lower().startswith(query)]
        members = members[:limit] if limit else members
        missing = []
    pages = [members[i:i + CHUNK_SIZE] for i in range(0, len(members), CHUNK_SIZE)] or [[]]
    return [payloads.members_chunk(guild, page, request.get("nonce"),
                                   missing if index == 0 else [], index, len(pages))
            for index, page in enumerate(pages)]
