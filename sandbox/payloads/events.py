"""Gateway frames and the bodies of the events the sandbox dispatches."""

from __future__ import annotations

from typing import Any

from ..models import Guild, Member, Message, Role, User
from .objects import API_VERSION, JSON, current_user, member, role, unavailable_guild, user


def hello(heartbeat_interval_ms: int) -> JSON:
    return {"op": 10, "d": {"heartbeat_interval": heartbeat_interval_ms}, "s": None, "t": None}


def dispatch(event: str, data: Any, seq: int) -> JSON:
    return {"op": 0, "t": event, "s": seq, "d": data}


def heartbeat_ack() -> JSON:
    return {"op": 11, "d": None, "s": None, "t": None}


def invalid_session(resumable: bool) -> JSON:
    return {"op": 9, "d": resumable, "s": None, "t": None}


def reconnect() -> JSON:
    return {"op": 7, "d": None, "s": None, "t": None}


def ready(
    *,
    bot: User,
    guilds: list[Guild],
    session_id: str,
    resume_gateway_url: str,
    shard: tuple[int, int] | None,
    application_id: int,
    application_flags: int,
) -> JSON:
    payload: JSON = {
        "v": API_VERSION,
        "user": current_user(bot),
        "guilds": [unavailable_guild(g) for g in guilds],
        "session_id": session_id,
        "session_type": "normal",
        "resume_gateway_url": resume_gateway_url,
        "application": {"id": str(application_id), "flags": application_flags},
        "private_channels": [],
        "relationships": [],
        "presences": [],
        "geo_ordered_rtc_regions": ["sandbox"],
        "user_settings": {},
        "guild_join_requests": [],
        "auth": {},
        "_trace": ['["sandbox",{}]'],
    }
    if shard is not None:
        payload["shard"] = [shard[0], shard[1]]
    return payload


def member_add(m: Member) -> JSON:
    return {**member(m), "guild_id": str(m.guild_id)}


def member_update(m: Member) -> JSON:
    return {**member(m), "guild_id": str(m.guild_id)}


def member_remove(guild_id: int, u: User) -> JSON:
    return {"guild_id": str(guild_id), "user": user(u)}


def ban_event(guild_id: int, u: User) -> JSON:
    return {"guild_id": str(guild_id), "user": user(u)}


def ban(u: User, reason: str | None) -> JSON:
    return {"user": user(u), "reason": reason}


def role_event(r: Role) -> JSON:
    return {"guild_id": str(r.guild_id), "role": role(r)}


def members_chunk(g: Guild, members: list[Member], nonce: str | None, not_found: list[int],
                  index: int = 0, count: int = 1) -> JSON:
    payload: JSON = {
        "guild_id": str(g.id),
        "members": [member(m) for m in members],
        "chunk_index": index,
        "chunk_count": count,
        "not_found": [str(i) for i in not_found],
        "presences": [],
    }
    if nonce is not None:
        payload["nonce"] = nonce
    return payload


def message_delete(msg: Message) -> JSON:
    payload: JSON = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
    if msg.guild_id is not None:
        payload["guild_id"] = str(msg.guild_id)
    return payload
