"""The sandbox's world: every user, guild, channel and message, keyed by snowflake.

:class:`World` looks objects up (raising the :class:`~sandbox.errors.NotFound`
Discord would answer, so REST handlers can let them propagate) and builds them
(guilds with their owner and the bot's managed role, roles, channels, DMs, messages).
The objects themselves are the dataclasses of :mod:`sandbox.models`. Turning a
change into a gateway event is not done here but in :mod:`sandbox.core`.
"""

from __future__ import annotations

from typing import Any

from . import errors
from .ids import SnowflakeGenerator
from .models import Channel, ChannelType, Guild, Member, Message, Role, User
from .permissions import DEFAULT_BOT_PERMISSIONS, DEFAULT_EVERYONE


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
