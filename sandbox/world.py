"""The sandbox's model of Discord: users, guilds, roles, channels, members, bans, messages.

Plain dataclasses and lookups with no networking. Lookups raise the
:class:`~sandbox.errors.NotFound` Discord would answer, so REST handlers can
let them propagate. Turning a change into a gateway event is not done here
but in :mod:`sandbox.core`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from enum import IntFlag
from typing import Any

from . import errors
from .ids import SnowflakeGenerator
from .permissions import ALL_PERMISSIONS, DEFAULT_BOT_PERMISSIONS, DEFAULT_EVERYONE, Perm


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


class World:
    """Everything the sandbox knows, keyed by snowflake."""

    def __init__(self, *, bot_user_id: int | None = None, bot_name: str = "Lifeline") -> None:
        self.ids = SnowflakeGenerator()
        self.users: dict[int, User] = {}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.bot_user = self.user_for(bot_user_id or self.ids.next(), bot_name, bot=True)

    # -- lookups ---------------------------------------------------------
    def guild(self, guild_id: int) -> Guild:
        try:
            return self.guilds[guild_id]
        except KeyError:
            raise errors.unknown("Guild", errors.UNKNOWN_GUILD) from None

    def channel(self, channel_id: int) -> Channel:
        channel = self.channels.get(channel_id)
        if channel is None or channel.deleted:
            raise errors.unknown("Channel", errors.UNKNOWN_CHANNEL)
        return channel

    def user(self, user_id: int) -> User:
        try:
            return self.users[user_id]
        except KeyError:
            raise errors.unknown("User", errors.UNKNOWN_USER) from None

    def message(self, message_id: int) -> Message:
        message = self.messages.get(message_id)
        if message is None or message.deleted:
            raise errors.unknown("Message", errors.UNKNOWN_MESSAGE)
        return message

    def channel_messages(self, channel_id: int) -> list[Message]:
        return [m for m in self.messages.values() if m.channel_id == channel_id and not m.deleted]

    # -- building --------------------------------------------------------
    def user_for(self, user_id: int, username: str | None = None, *, bot: bool = False) -> User:
        """The user with this id, created on first sight."""
        user = self.users.get(user_id)
        if user is None:
            self.ids.observe(user_id)
            user = User(id=user_id, username=username or f"user{user_id % 10000}", bot=bot)
            self.users[user_id] = user
        elif username is not None:
            user.username = username
        return user

    def create_guild(
        self,
        name: str,
        *,
        guild_id: int | None = None,
        owner_id: int | None = None,
        owner_name: str = "owner",
        bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
        everyone_permissions: int = DEFAULT_EVERYONE,
    ) -> Guild:
        guild_id = guild_id if guild_id is not None else self.ids.next()
        if guild_id in self.guilds:
            raise ValueError(f"guild {guild_id} already exists")
        self.ids.observe(guild_id)
        owner = self.user_for(owner_id if owner_id is not None else self.ids.next(), owner_name)
        guild = Guild(id=guild_id, name=name, owner_id=owner.id)
        guild.roles[guild_id] = Role(
            id=guild_id, guild_id=guild_id, name="@everyone", permissions=everyone_permissions
        )
        bot_role = self.add_role(
            guild, self.bot_user.username, permissions=bot_permissions, position=1
        )
        bot_role.managed = True
        bot_role.bot_id = self.bot_user.id
        guild.members[owner.id] = Member(user=owner, guild_id=guild_id)
        guild.members[self.bot_user.id] = Member(
            user=self.bot_user, guild_id=guild_id, roles=[bot_role.id]
        )
        self.guilds[guild_id] = guild
        return guild

    def add_role(
        self,
        guild: Guild,
        name: str,
        *,
        permissions: int = 0,
        position: int | None = None,
        role_id: int | None = None,
        color: int = 0,
    ) -> Role:
        role_id = role_id if role_id is not None else self.ids.next()
        if position is None:
            bot_role = self.bot_role(guild)
            if bot_role is None:
                position = max((r.position for r in guild.roles.values()), default=0) + 1
            else:
                # Admins keep the bot's role on top so it can manage the others.
                position = bot_role.position
                bot_role.position += 1
        role = Role(
            id=role_id,
            guild_id=guild.id,
            name=name,
            permissions=permissions,
            position=position,
            color=color,
        )
        guild.roles[role_id] = role
        return role

    def add_channel(
        self,
        guild: Guild,
        name: str,
        *,
        channel_id: int | None = None,
        type: int = ChannelType.TEXT,
        parent_id: int | None = None,
        topic: str | None = None,
    ) -> Channel:
        channel_id = channel_id if channel_id is not None else self.ids.next()
        position = len(guild.channels)
        channel = Channel(
            id=channel_id,
            guild_id=guild.id,
            name=name,
            type=type,
            position=position,
            parent_id=parent_id,
            topic=topic,
        )
        guild.channels[channel_id] = channel
        self.channels[channel_id] = channel
        if guild.system_channel_id is None and type == ChannelType.TEXT:
            guild.system_channel_id = channel_id
        return channel

    def bot_role(self, guild: Guild) -> Role | None:
        return next((r for r in guild.roles.values() if r.bot_id == self.bot_user.id), None)

    def dm_channel(self, user: User) -> Channel:
        """The bot's DM channel with a user, created on first use."""
        for channel in self.channels.values():
            if channel.type == ChannelType.DM and channel.recipient_id == user.id:
                return channel
        channel = Channel(
            id=self.ids.next(), guild_id=None, name="", type=ChannelType.DM, recipient_id=user.id
        )
        self.channels[channel.id] = channel
        return channel

    def add_message(self, channel: Channel, author: User, **fields: Any) -> Message:
        message = Message(
            id=self.ids.next(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=author,
            **fields,
        )
        self.messages[message.id] = message
        channel.last_message_id = message.id
        return message
