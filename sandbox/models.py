"""The sandbox's model of Discord: users, guilds, roles, channels, members, bans, messages.

Plain dataclasses with no networking, plus a guild's permission maths (base
permissions, channel overwrites). Lookups raise the :class:`~sandbox.errors.NotFound`
Discord would answer, so REST handlers can let them propagate. The
:class:`~sandbox.world.World` that holds them all is in :mod:`sandbox.world`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from enum import IntFlag
from typing import Any

from . import errors
from .permissions import ALL_PERMISSIONS, Perm


class MemberFlag(IntFlag):
    """``GuildMember.flags`` bits (the same as discord.py's MemberFlags)."""

    DID_REJOIN = 1 << 0
    COMPLETED_ONBOARDING = 1 << 1
    BYPASSES_VERIFICATION = 1 << 2
    STARTED_ONBOARDING = 1 << 3


class ChannelType:
    TEXT = 0
    DM = 1
    VOICE = 2
    CATEGORY = 4


class MessageFlag(IntFlag):
    EPHEMERAL = 1 << 6
    LOADING = 1 << 7


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class User:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    avatar: str | None = None


@dataclass
class Role:
    id: int
    guild_id: int
    name: str
    permissions: int = 0
    position: int = 0
    color: int = 0
    hoist: bool = False
    mentionable: bool = False
    managed: bool = False
    bot_id: int | None = None

    @property
    def is_everyone(self) -> bool:
        return self.id == self.guild_id


@dataclass
class Overwrite:
    """A channel permission overwrite; ``type`` 0 is a role, 1 a member."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0


@dataclass
class Channel:
    id: int
    guild_id: int | None
    name: str
    type: int = ChannelType.TEXT
    position: int = 0
    parent_id: int | None = None
    topic: str | None = None
    overwrites: dict[int, Overwrite] = field(default_factory=dict)
    recipient_id: int | None = None
    last_message_id: int | None = None
    deleted: bool = False


@dataclass
class Member:
    user: User
    guild_id: int
    roles: list[int] = field(default_factory=list)
    joined_at: datetime.datetime = field(default_factory=utcnow)
    pending: bool = False
    flags: int = 0
    nick: str | None = None
    communication_disabled_until: datetime.datetime | None = None

    @property
    def id(self) -> int:
        return self.user.id


@dataclass
class Ban:
    user: User
    reason: str | None = None


@dataclass
class InteractionRef:
    """What a response message says about the interaction that made it."""

    id: int
    type: int
    name: str
    user: User


@dataclass
class Message:
    id: int
    channel_id: int
    guild_id: int | None
    author: User
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    nonce: str | int | None = None
    allowed_mentions: dict[str, Any] | None = None
    created_at: datetime.datetime = field(default_factory=utcnow)
    edited_at: datetime.datetime | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    interaction: InteractionRef | None = None
    reference_id: int | None = None
    mentions: list[int] = field(default_factory=list)
    mention_roles: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    deleted: bool = False

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & MessageFlag.EPHEMERAL)

    @property
    def text(self) -> str:
        """What a person reads: the content, then each embed's title, description, fields
        (``name: value``) and footer, one part per line, empty parts left out."""
        parts = [self.content]
        for embed in self.embeds:
            parts += [embed.get("title") or "", embed.get("description") or ""]
            parts += [f"{f.get('name')}: {f.get('value')}" for f in embed.get("fields") or []]
            parts.append((embed.get("footer") or {}).get("text") or "")
        return "\n".join(p for p in parts if p)

    def lines(self) -> list[str]:
        """:attr:`text` line by line (a bot's log lines, whether in content or embeds)."""
        return self.text.splitlines()

    @property
    def loading(self) -> bool:
        """A deferred ("thinking") interaction response not yet edited."""
        return bool(self.flags & MessageFlag.LOADING)

    def custom_ids(self) -> list[str]:
        """Every ``custom_id`` in the message's components, nested rows included."""
        found: list[str] = []
        stack = list(self.components)
        while stack:
            component = stack.pop(0)
            if "custom_id" in component:
                found.append(str(component["custom_id"]))
            stack.extend(component.get("components", []))
        return found

    def find_component(self, custom_id: str) -> dict[str, Any] | None:
        stack = list(self.components)
        while stack:
            component = stack.pop(0)
            if component.get("custom_id") == custom_id:
                return component
            stack.extend(component.get("components", []))
        return None


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    roles: dict[int, Role] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    bans: dict[int, Ban] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)
    preferred_locale: str = "en-US"
    system_channel_id: int | None = None
    created_at: datetime.datetime = field(default_factory=utcnow)

    @property
    def everyone(self) -> Role:
        return self.roles[self.id]

    def member(self, user_id: int) -> Member:
        try:
            return self.members[user_id]
        except KeyError:
            raise errors.unknown("Member", errors.UNKNOWN_MEMBER) from None

    def role(self, role_id: int) -> Role:
        try:
            return self.roles[role_id]
        except KeyError:
            raise errors.unknown("Role", errors.UNKNOWN_ROLE) from None

    def role_named(self, name: str) -> Role:
        for role in self.roles.values():
            if role.name == name:
                return role
        raise errors.unknown("Role", errors.UNKNOWN_ROLE)

    def channel_named(self, name: str) -> Channel:
        for channel in self.channels.values():
            if channel.name == name:
                return channel
        raise errors.unknown("Channel", errors.UNKNOWN_CHANNEL)

    def top_position(self, user_id: int) -> int:
        """Position of the member's highest role (0 for @everyone only)."""
        member = self.member(user_id)
        return max((self.roles[r].position for r in member.roles if r in self.roles), default=0)

    def base_permissions(self, user_id: int) -> int:
        """Guild-wide permissions: owner and administrators get everything."""
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        member = self.member(user_id)
        perms = self.everyone.permissions
        for role_id in member.roles:
            role = self.roles.get(role_id)
            if role is not None:
                perms |= role.permissions
        if perms & Perm.ADMINISTRATOR:
            return ALL_PERMISSIONS
        return perms

    def channel_permissions(self, channel: Channel, user_id: int) -> int:
        """Permissions in a channel after @everyone, role and member overwrites."""
        perms = self.base_permissions(user_id)
        if perms & Perm.ADMINISTRATOR:
            return ALL_PERMISSIONS
        member = self.member(user_id)
        everyone = channel.overwrites.get(self.id)
        if everyone is not None:
            perms = (perms & ~everyone.deny) | everyone.allow
        allow = deny = 0
        for role_id in member.roles:
            overwrite = channel.overwrites.get(role_id)
            if overwrite is not None and overwrite.type == 0:
                allow |= overwrite.allow
                deny |= overwrite.deny
        perms = (perms & ~deny) | allow
        own = channel.overwrites.get(user_id)
        if own is not None and own.type == 1:
            perms = (perms & ~own.deny) | own.allow
        if not perms & Perm.VIEW_CHANNEL:
            return 0
        return perms

    def has_permissions(self, user_id: int, wanted: int) -> bool:
        return self.base_permissions(user_id) & wanted == wanted
