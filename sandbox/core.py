"""Where changes to the world become gateway events, for REST handlers and scenarios alike.

A role added by the bot over REST and a role added by a test both go through
:meth:`Core.add_member_role`, so both produce the same GUILD_MEMBER_UPDATE.
"""

from __future__ import annotations

import re
from typing import Any

from . import errors, payloads
from .commands import CommandRegistry
from .config import SandboxConfig
from .gateway import Gateway, GatewaySession
from .limits import FaultInjector, RateLimiter
from .models import Ban, Channel, Guild, Member, Message, Overwrite, Role, User, utcnow
from .oauth import OAuth
from .permissions import Intent, Perm
from .records import Notifier, Recorder, RoleChange
from .world import World

JSON = dict[str, Any]

_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


class Core:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.world = World(bot_user_id=config.bot_user_id, bot_name=config.bot_name)
        self.notifier = Notifier()
        self.recorder = Recorder(self.notifier)
        self.gateway = Gateway(self.world, config, self.notifier)
        self.commands = CommandRegistry(self.world.ids)
        self.clock = config.clock
        self.rate_limiter = RateLimiter(
            config.message_rate_limit, config.message_rate_per, clock=self.clock.now
        )
        self.faults = FaultInjector()
        self.oauth = OAuth(config, self.world, lambda: self.application_id)
        # (author_id, nonce) -> (message_id, clock time): Discord de-duplicates per author,
        # in any channel, whichever gateway session the author has.
        self.nonces: dict[tuple[int, str], tuple[int, float]] = {}

    @property
    def application_id(self) -> int:
        return self.config.application_id or self.world.bot_user.id

    @property
    def bot(self) -> User:
        return self.world.bot_user

    # -- guild structure -------------------------------------------------
    def guild_joined(self, guild: Guild) -> None:
        """Tell connected shards about a guild created after they identified."""

        def body(session: GatewaySession) -> JSON:
            with_members = bool(session.intents & Intent.GUILD_MEMBERS)
            return payloads.guild_create(guild, bot_user_id=self.bot.id, with_members=with_members,
                                         large_threshold=session.large_threshold)

        self.gateway.dispatch("GUILD_CREATE", body, guild_id=guild.id)

    def add_role(self, guild: Guild, name: str, **fields: Any) -> Role:
        bot_role = self.world.bot_role(guild)
        bot_position = None if bot_role is None else bot_role.position
        role = self.world.add_role(guild, name, **fields)
        self.gateway.dispatch("GUILD_ROLE_CREATE", payloads.role_event(role), guild_id=guild.id)
        if bot_role is not None and bot_role.position != bot_position:
            self.gateway.dispatch(
                "GUILD_ROLE_UPDATE", payloads.role_event(bot_role), guild_id=guild.id
            )
        return role

    def edit_role(
        self, guild: Guild, role: Role, *, permissions: int | None = None,
        position: int | None = None,
    ) -> Role:
        """An admin edits a role in Server Settings: its permissions, its place in the list.
        One GUILD_ROLE_UPDATE per role that changed (a move renumbers its neighbours)."""
        changed = {}
        if permissions is not None and permissions != role.permissions:
            role.permissions = permissions
            changed[role.id] = role
        if position is not None:
            changed.update((r.id, r) for r in _move_role(guild, role, position))
        for each in changed.values():
            self.gateway.dispatch("GUILD_ROLE_UPDATE", payloads.role_event(each), guild_id=guild.id)
        return role

    def delete_role(self, guild: Guild, role: Role) -> None:
        """An admin deletes a role: gone from the guild and from every member holding it."""
        if role.is_everyone or role.managed:
            raise errors.SandboxError(f"role {role.id} cannot be deleted")
        del guild.roles[role.id]
        for member in guild.members.values():
            if role.id in member.roles:
                member.roles.remove(role.id)
        self.gateway.dispatch(
            "GUILD_ROLE_DELETE", {"guild_id": str(guild.id), "role_id": str(role.id)},
            guild_id=guild.id,
        )

    def add_channel(self, guild: Guild, name: str, **fields: Any) -> Channel:
        channel = self.world.add_channel(guild, name, **fields)
        self.gateway.dispatch("CHANNEL_CREATE", payloads.channel(channel), guild_id=guild.id)
        return channel

    def delete_channel(self, channel: Channel) -> None:
        channel.deleted = True
        if channel.guild_id is not None:
            self.world.guild(channel.guild_id).channels.pop(channel.id, None)
        self.gateway.dispatch(
            "CHANNEL_DELETE", payloads.channel(channel), guild_id=channel.guild_id
        )

    def set_overwrite(
        self, channel: Channel, target_id: int, kind: int, *, allow: int = 0, deny: int = 0
    ) -> None:
        if allow == 0 and deny == 0:
            channel.overwrites.pop(target_id, None)
        else:
            channel.overwrites[target_id] = Overwrite(
                id=target_id, type=kind, allow=allow, deny=deny
            )
        self.gateway.dispatch(
            "CHANNEL_UPDATE", payloads.channel(channel), guild_id=channel.guild_id
        )

    # -- members ---------------------------------------------------------
    def _member_update(self, member: Member) -> None:
        self.gateway.dispatch(
            "GUILD_MEMBER_UPDATE",
            payloads.member_update(member),
            guild_id=member.guild_id,
            about_bot=member.id == self.bot.id,
        )

    def member_join(
        self,
        guild: Guild,
        user: User,
        *,
        pending: bool,
        roles: list[int],
        flags: int,
        nick: str | None = None,
    ) -> Member:
        if user.id in guild.bans:
            raise errors.SandboxError(f"user {user.id} is banned from guild {guild.id}")
        if user.id in guild.members:
            raise errors.SandboxError(f"user {user.id} is already a member of guild {guild.id}")
        for role_id in roles:
            guild.role(role_id)
        member = Member(
            user=user, guild_id=guild.id, roles=list(roles), pending=pending, flags=flags, nick=nick
        )
        guild.members[user.id] = member
        self.gateway.dispatch("GUILD_MEMBER_ADD", payloads.member_add(member), guild_id=guild.id)
        return member

    def member_remove(self, guild: Guild, user_id: int) -> Member:
        member = guild.member(user_id)
        del guild.members[user_id]
        self.gateway.dispatch(
            "GUILD_MEMBER_REMOVE", payloads.member_remove(guild.id, member.user), guild_id=guild.id
        )
        return member

    def member_update(
        self,
        guild: Guild,
        user_id: int,
        *,
        flags: int | None = None,
        pending: bool | None = None,
        roles: list[int] | None = None,
        nick: str | None = None,
        clear_nick: bool = False,
        source: str = "scenario",
    ) -> Member:
        member = guild.member(user_id)
        if flags is not None:
            member.flags = flags
        if pending is not None:
            member.pending = pending
        if nick is not None or clear_nick:
            member.nick = nick
        if roles is not None:
            for role_id in roles:
                guild.role(role_id)
            added = [r for r in roles if r not in member.roles]
            removed = [r for r in member.roles if r not in roles]
            member.roles = list(roles)
            for role_id in added:
                self.recorder.role_change(RoleChange(guild.id, user_id, role_id, "add", source))
            for role_id in removed:
                self.recorder.role_change(RoleChange(guild.id, user_id, role_id, "remove", source))
        self._member_update(member)
        return member

    def add_member_role(self, guild: Guild, user_id: int, role_id: int, *, source: str) -> Member:
        member = guild.member(user_id)
        guild.role(role_id)
        if role_id not in member.roles:
            member.roles.append(role_id)
        self.recorder.role_change(RoleChange(guild.id, user_id, role_id, "add", source))
        self._member_update(member)
        return member

    def remove_member_role(
        self, guild: Guild, user_id: int, role_id: int, *, source: str
    ) -> Member:
        member = guild.member(user_id)
        guild.role(role_id)
        if role_id in member.roles:
            member.roles.remove(role_id)
        self.recorder.role_change(RoleChange(guild.id, user_id, role_id, "remove", source))
        self._member_update(member)
        return member

    def ban(self, guild: Guild, user: User, reason: str | None) -> None:
        guild.bans[user.id] = Ban(user=user, reason=reason)
        self.gateway.dispatch(
            "GUILD_BAN_ADD", payloads.ban_event(guild.id, user), guild_id=guild.id
        )
        if user.id in guild.members:
            self.member_remove(guild, user.id)

    def unban(self, guild: Guild, user_id: int) -> None:
        ban = guild.bans.pop(user_id, None)
        if ban is None:
            raise errors.unknown("Ban", errors.UNKNOWN_BAN)
        self.gateway.dispatch(
            "GUILD_BAN_REMOVE", payloads.ban_event(guild.id, ban.user), guild_id=guild.id
        )

    # -- the bot's own rights --------------------------------------------
    def require_guild_permission(self, guild: Guild, permission: int) -> None:
        if not guild.has_permissions(self.bot.id, permission):
            raise errors.missing_permissions()

    def require_above(self, guild: Guild, position: int) -> None:
        """The bot may only manage roles and members strictly below its highest role."""
        if guild.owner_id != self.bot.id and guild.top_position(self.bot.id) <= position:
            raise errors.missing_permissions()

    # -- messages --------------------------------------------------------
    def _mentions(self, message: Message, guild: Guild | None) -> None:
        allowed = message.allowed_mentions
        parse = None if allowed is None else allowed.get("parse", [])
        users_ok = {int(u) for u in (allowed or {}).get("users", [])}
        roles_ok = {int(r) for r in (allowed or {}).get("roles", [])}
        for raw in _USER_MENTION.findall(message.content):
            user_id = int(raw)
            if parse is None or "users" in parse or user_id in users_ok:
                if user_id not in message.mentions:
                    message.mentions.append(user_id)
        for raw in _ROLE_MENTION.findall(message.content):
            role_id = int(raw)
            if (
                guild is not None
                and role_id in guild.roles
                and (parse is None or "roles" in parse or role_id in roles_ok)
            ):
                message.mention_roles.append(role_id)
        if "@everyone" in message.content or "@here" in message.content:
            # Discord posts the message either way; without Mention Everyone it just doesn't ping.
            message.mention_everyone = (parse is None or "everyone" in parse) and (
                self._may_mention_everyone(message, guild)
            )

    def _may_mention_everyone(self, message: Message, guild: Guild | None) -> bool:
        if guild is None or message.author.id not in guild.members:
            return False
        channel = self.world.channels[message.channel_id]
        return bool(
            guild.channel_permissions(channel, message.author.id) & Perm.MENTION_EVERYONE
        )

    def create_message(
        self, channel: Channel, author: User, *, dispatch: bool = True, **fields: Any
    ) -> Message:
        message = self.world.add_message(channel, author, **fields)
        guild = None if channel.guild_id is None else self.world.guild(channel.guild_id)
        self._mentions(message, guild)
        if dispatch and not message.ephemeral:
            self._dispatch_message("MESSAGE_CREATE", message, guild)
        self.notifier.notify()
        return message

    def edit_message(self, message: Message, fields: JSON) -> Message:
        for key in ("content", "embeds", "components", "allowed_mentions"):
            if key in fields and fields[key] is not None:
                setattr(message, key, fields[key])
        if "flags" in fields and fields["flags"] is not None:
            # Only the suppress-embeds bit is editable; ephemeral stays as it was.
            message.flags = (message.flags & 64) | (int(fields["flags"]) & ~64)
        message.flags &= ~128
        message.edited_at = utcnow()
        guild = None if message.guild_id is None else self.world.guilds.get(message.guild_id)
        if not message.ephemeral:
            self._dispatch_message("MESSAGE_UPDATE", message, guild)
        self.notifier.notify()
        return message

    def delete_message(self, message: Message) -> None:
        message.deleted = True
        if not message.ephemeral:
            self.gateway.dispatch(
                "MESSAGE_DELETE", payloads.message_delete(message), guild_id=message.guild_id
            )
        self.notifier.notify()

    def message_payload(self, message: Message, *, with_member: bool = False) -> JSON:
        """The Message object for REST answers, or with ``with_member`` for gateway events."""
        guild = None if message.guild_id is None else self.world.guilds.get(message.guild_id)
        referenced = (
            None if message.reference_id is None else self.world.messages.get(message.reference_id)
        )
        author_member = (
            guild.members.get(message.author.id) if with_member and guild is not None else None
        )
        return payloads.message(
            message, author_member=author_member, guild=guild, referenced=referenced
        )

    def _dispatch_message(self, event: str, message: Message, guild: Guild | None) -> None:
        def body(session: GatewaySession) -> JSON:
            data = self.message_payload(message, with_member=True)
            sees_content = (
                guild is None
                or session.intents & Intent.MESSAGE_CONTENT
                or message.author.id == self.bot.id
                or self.bot.id in message.mentions
            )
            if not sees_content:
                data.update(content="", embeds=[], attachments=[], components=[])
            return data

        if guild is None:
            # DMs need the direct-messages intent; only shard 0 gets them.
            for session in list(self.gateway.sessions.values()):
                if session.intents & Intent.DIRECT_MESSAGES and session.shard_id == 0:
                    session.send(event, body, None)
            self.notifier.notify()
            return
        self.gateway.dispatch(event, body, guild_id=guild.id)

    def check_nonce(
        self, author_id: int, nonce: str | int | None, enforce: bool
    ) -> Message | None:
        """The author's earlier message for a repeated nonce sent with ``enforce_nonce``, if the
        first one is still within ``nonce_window``."""
        if nonce is None or not enforce:
            return None
        seen = self.nonces.get((author_id, str(nonce)))
        if seen is None or self.clock.now() - seen[1] > self.config.nonce_window:
            return None
        return self.world.messages.get(seen[0])

    def remember_nonce(self, author_id: int, nonce: str | int | None, message: Message) -> None:
        if nonce is not None:
            self.nonces[(author_id, str(nonce))] = (message.id, self.clock.now())


def _move_role(guild: Guild, role: Role, position: int) -> list[Role]:
    """Put ``role`` at ``position`` as Discord's role list does (drag and drop): the roles
    above @everyone are renumbered 1..n in their new order. Answers the roles whose position
    changed."""
    if role.is_everyone:
        raise errors.SandboxError("@everyone stays at position 0")
    ordered = sorted(
        (r for r in guild.roles.values() if not r.is_everyone and r.id != role.id),
        key=lambda r: (r.position, r.id),
    )
    ordered.insert(min(max(position, 1), len(ordered) + 1) - 1, role)
    moved = []
    for number, each in enumerate(ordered, start=1):
        if each.position != number:
            each.position = number
            moved.append(each)
    return moved
