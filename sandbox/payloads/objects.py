"""Discord objects: user, role, member, channel, guild, message."""

from __future__ import annotations

import datetime
from typing import Any

from ..models import Channel, ChannelType, Guild, Member, Message, Role, User

JSON = dict[str, Any]

API_VERSION = 10
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024


def iso(moment: datetime.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def user(u: User) -> JSON:
    return {
        "id": str(u.id),
        "username": u.username,
        "discriminator": "0",
        "global_name": u.global_name,
        "avatar": u.avatar,
        "bot": u.bot,
        "system": False,
        "public_flags": 0,
        "flags": 0,
        "banner": None,
        "accent_color": None,
    }


def current_user(u: User) -> JSON:
    """``GET /users/@me`` and READY's user: the bot account."""
    return {
        **user(u),
        "verified": True,
        "mfa_enabled": False,
        "locale": "en-US",
        "email": None,
        "premium_type": 0,
    }


def role(r: Role) -> JSON:
    payload: JSON = {
        "id": str(r.id),
        "name": r.name,
        "color": r.color,
        "colors": {"primary_color": r.color, "secondary_color": None, "tertiary_color": None},
        "hoist": r.hoist,
        "position": r.position,
        "permissions": str(r.permissions),
        "managed": r.managed,
        "mentionable": r.mentionable,
        "flags": 0,
        "icon": None,
        "unicode_emoji": None,
    }
    if r.bot_id is not None:
        payload["tags"] = {"bot_id": str(r.bot_id)}
    return payload


def member(m: Member, *, permissions: int | None = None, with_user: bool = True) -> JSON:
    payload: JSON = {
        "roles": [str(r) for r in m.roles],
        "joined_at": iso(m.joined_at),
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": m.flags,
        "pending": m.pending,
        "nick": m.nick,
        "avatar": None,
        "banner": None,
        "communication_disabled_until": iso(m.communication_disabled_until),
    }
    if with_user:
        payload["user"] = user(m.user)
    if permissions is not None:
        payload["permissions"] = str(permissions)
    return payload


def channel(c: Channel, *, recipient: User | None = None, permissions: int | None = None) -> JSON:
    if c.type == ChannelType.DM:
        return {
            "id": str(c.id),
            "type": ChannelType.DM,
            "last_message_id": None if c.last_message_id is None else str(c.last_message_id),
            "recipients": [] if recipient is None else [user(recipient)],
            "flags": 0,
        }
    payload: JSON = {
        "id": str(c.id),
        "type": c.type,
        "guild_id": str(c.guild_id),
        "name": c.name,
        "position": c.position,
        "permission_overwrites": [
            {"id": str(o.id), "type": o.type, "allow": str(o.allow), "deny": str(o.deny)}
            for o in c.overwrites.values()
        ],
        "nsfw": False,
        "parent_id": None if c.parent_id is None else str(c.parent_id),
        "flags": 0,
    }
    if c.type != ChannelType.CATEGORY:
        payload.update(
            topic=c.topic,
            last_message_id=None if c.last_message_id is None else str(c.last_message_id),
            rate_limit_per_user=0,
        )
    if c.type == ChannelType.VOICE:
        payload.update(bitrate=64000, user_limit=0, rtc_region=None)
    if permissions is not None:
        payload["permissions"] = str(permissions)
    return payload


def _guild_base(g: Guild) -> JSON:
    return {
        "id": str(g.id),
        "name": g.name,
        "icon": None,
        "icon_hash": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(g.owner_id),
        "region": "deprecated",
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 1,
        "default_message_notifications": 1,
        "explicit_content_filter": 2,
        "roles": [role(r) for r in sorted(g.roles.values(), key=lambda r: r.position)],
        "emojis": [],
        "stickers": [],
        "features": list(g.features),
        "mfa_level": 0,
        "nsfw_level": 0,
        "application_id": None,
        "system_channel_id": None if g.system_channel_id is None else str(g.system_channel_id),
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "vanity_url_code": None,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "premium_progress_bar_enabled": False,
        "preferred_locale": g.preferred_locale,
        "max_members": 500000,
        "max_video_channel_users": 25,
        "widget_enabled": False,
        "widget_channel_id": None,
        "incidents_data": None,
    }


def guild_create(g: Guild, *, bot_user_id: int, with_members: bool,
                 large_threshold: int = 250) -> JSON:
    """GUILD_CREATE: the guild, with every member while it has at most ``large_threshold``
    members (then ``member_count == len(members)``, so no chunking is needed).

    A larger guild is ``large``: as Discord does, only the bot's own member comes with it
    (no presences are sent to a bot), and the client asks for the rest with op 8. Without
    the members intent Discord sends only the bot's own member; the count stays the real
    one, as Discord does.
    """
    large = len(g.members) > large_threshold
    members = list(g.members.values()) if with_members and not large \
        else [g.members[bot_user_id]]
    return {
        **_guild_base(g),
        "unavailable": False,
        "joined_at": iso(g.members[bot_user_id].joined_at),
        "large": large,
        "member_count": len(g.members),
        "members": [member(m) for m in members],
        "channels": [channel(c) for c in g.channels.values() if not c.deleted],
        "threads": [],
        "presences": [],
        "voice_states": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "lazy": True,
    }


def guild_rest(g: Guild) -> JSON:
    """``GET /guilds/{id}``: no members or channels, approximate counts instead."""
    return {
        **_guild_base(g),
        "approximate_member_count": len(g.members),
        "approximate_presence_count": 0,
    }


def unavailable_guild(g: Guild) -> JSON:
    return {"id": str(g.id), "unavailable": True}


def message(
    msg: Message,
    *,
    author_member: Member | None = None,
    guild: Guild | None = None,
    referenced: Message | None = None,
) -> JSON:
    """A Message object; pass ``author_member`` for gateway MESSAGE_CREATE in a guild.

    ``referenced`` is the message a reply points at (its payload is nested one level only).
    """
    payload: JSON = {
        "id": str(msg.id),
        "channel_id": str(msg.channel_id),
        "type": msg.type,
        "author": user(msg.author),
        "content": msg.content,
        "timestamp": iso(msg.created_at),
        "edited_timestamp": iso(msg.edited_at),
        "tts": False,
        "mention_everyone": msg.mention_everyone,
        "mentions": _mentioned_users(msg, guild),
        "mention_roles": [str(r) for r in msg.mention_roles],
        "attachments": msg.attachments,
        "embeds": msg.embeds,
        "components": msg.components,
        "pinned": False,
        "flags": msg.flags,
        "reactions": [],
    }
    if msg.guild_id is not None:
        payload["guild_id"] = str(msg.guild_id)
    if msg.nonce is not None:
        payload["nonce"] = msg.nonce
    if msg.webhook_id is not None:
        payload["webhook_id"] = str(msg.webhook_id)
    if msg.application_id is not None:
        payload["application_id"] = str(msg.application_id)
    if author_member is not None:
        payload["member"] = member(author_member, with_user=False)
    if msg.reference_id is not None:
        payload["message_reference"] = {
            "type": 0,
            "message_id": str(msg.reference_id),
            "channel_id": str(msg.channel_id),
            **({} if msg.guild_id is None else {"guild_id": str(msg.guild_id)}),
        }
        payload["referenced_message"] = (
            None if referenced is None else message(referenced, guild=guild)
        )
    if msg.interaction is not None:
        ref = msg.interaction
        payload["interaction_metadata"] = {
            "id": str(ref.id),
            "type": ref.type,
            "user": user(ref.user),
            "authorizing_integration_owners": {}
            if msg.guild_id is None
            else {"0": str(msg.guild_id)},
        }
        payload["interaction"] = {
            "id": str(ref.id),
            "type": ref.type,
            "name": ref.name,
            "user": user(ref.user),
        }
    return payload


def _mentioned_users(msg: Message, guild: Guild | None) -> list[JSON]:
    found: list[JSON] = []
    for user_id in msg.mentions:
        m = None if guild is None else guild.members.get(user_id)
        if m is not None:
            found.append({**user(m.user), "member": member(m, with_user=False)})
    return found
