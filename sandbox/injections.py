"""What a test does to a running sandbox besides building the world: :class:`Injections`.

Member events (joins, leaves, updates, bans, a member's message), slash commands,
autocomplete and button presses, gateway disconnects, and faults and limits (injected
REST faults, a spent rate-limit bucket, the clock moved on). Each is a plain call that
changes the world and queues the gateway events at once; only ``autocomplete`` waits,
for the bot's choices.

:class:`Injections` is the half of :class:`~sandbox.scenario.Sandbox` that acts; it
builds on :class:`~sandbox.readback.ReadBack` (the half that looks) for its lookups.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .commands import OVERRIDE_ROLE, OVERRIDE_USER
from .config import SandboxConfig
from .errors import CommandRefused
from .interaction_handle import InteractionHandle
from .limits import Fault
from .models import Member, Message
from .readback import ChannelRef, GuildRef, ReadBack
from .rest_messages import POST_MESSAGE
from .validation import validate_nonce


class Injections(ReadBack):
    config: SandboxConfig

    # -- member events ---------------------------------------------------
    def member_join(
        self,
        guild: GuildRef,
        user_id: int | None = None,
        username: str | None = None,
        *,
        pending: bool = True,
        roles: Iterable[int] = (),
        flags: int = 0,
        bot: bool = False,
    ) -> Member:
        world = self.core.world
        user = world.user_for(
            user_id if user_id is not None else world.ids.next(), username, bot=bot
        )
        return self.core.member_join(
            self.guild(guild), user, pending=pending, roles=list(roles), flags=flags
        )

    def member_leave(self, guild: GuildRef, user_id: int) -> Member:
        return self.core.member_remove(self.guild(guild), user_id)

    def member_update(
        self,
        guild: GuildRef,
        user_id: int,
        *,
        flags: int | None = None,
        pending: bool | None = None,
        roles: Iterable[int] | None = None,
        nick: str | None = None,
    ) -> Member:
        return self.core.member_update(
            self.guild(guild),
            user_id,
            flags=flags,
            pending=pending,
            roles=None if roles is None else list(roles),
            nick=nick,
        )

    def ban(self, guild: GuildRef, user_id: int, *, reason: str | None = None) -> None:
        """GUILD_BAN_ADD, then GUILD_MEMBER_REMOVE if the user was a member."""
        self.core.ban(self.guild(guild), self.core.world.user_for(user_id), reason)

    def unban(self, guild: GuildRef, user_id: int) -> None:
        self.core.unban(self.guild(guild), user_id)

    def user_message(
        self,
        channel: ChannelRef,
        user_id: int,
        content: str,
        *,
        guild: GuildRef | None = None,
        nonce: str | int | None = None,
        enforce_nonce: bool = False,
    ) -> Message:
        """A member posts in a channel (MESSAGE_CREATE); with ``enforce_nonce`` a nonce this
        user sent recently returns their earlier message instead, as Discord does."""
        target = self.channel(channel, guild)
        author = self.core.world.user(user_id)
        validate_nonce(nonce)
        earlier = self.core.check_nonce(author.id, nonce, enforce_nonce)
        if earlier is not None:
            return earlier
        message = self.core.create_message(target, author, content=content, nonce=nonce)
        if enforce_nonce:
            self.core.remember_nonce(author.id, nonce, message)
        return message

    # -- commands and components -----------------------------------------
    def commands(self, guild: GuildRef | None = None) -> list[dict[str, Any]]:
        """Commands the bot synced, globally or to one guild."""
        if guild is None:
            return list(self.core.commands.global_commands)
        return list(self.core.commands.guild_commands.get(self.guild(guild).id, []))

    def grant_command(
        self, guild: GuildRef, command_name: str, target_id: int, *, allow: bool = True
    ) -> None:
        """Show (or hide) a command for a user or role, as a guild admin can in Integrations."""
        target_guild = self.guild(guild)
        command = self.core.commands.find(command_name, target_guild.id)
        if command is None:
            raise CommandRefused(f"/{command_name} is not synced for guild {target_guild.id}")
        kind = OVERRIDE_ROLE if target_id in target_guild.roles else OVERRIDE_USER
        self.core.commands.set_override(target_guild.id, int(command["id"]), target_id, kind, allow)

    def slash_command(
        self,
        guild: GuildRef,
        user_id: int,
        command: str,
        options: Mapping[str, Any] | None = None,
        *,
        channel: ChannelRef | None = None,
    ) -> InteractionHandle:
        """Run ``/command sub... options`` as a member.

        Raises CommandRefused where Discord would not offer the command (hidden
        by ``default_member_permissions``, not synced, bad options).
        """
        target = self.guild(guild)
        where = None if channel is None else self.channel(channel, target)
        return self.interactions.command(target, user_id, command, options or {}, channel=where)

    async def autocomplete(
        self,
        guild: GuildRef,
        user_id: int,
        command: str,
        options: Mapping[str, Any] | None = None,
        *,
        focused: str,
        channel: ChannelRef | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[dict[str, Any]]:
        """Type into option ``focused`` and return the choices the bot offers."""
        target = self.guild(guild)
        where = None if channel is None else self.channel(channel, target)
        handle = self.interactions.command(
            target, user_id, command, options or {}, channel=where, focused=focused
        )
        return await handle.wait_choices(timeout)

    def press_button(
        self, target: InteractionHandle | Message | int, custom_id: str, user_id: int
    ) -> InteractionHandle:
        """Click a component on a message, or on the newest message of an interaction having it."""
        if isinstance(target, InteractionHandle):
            candidates = list(reversed(target.messages))
            if target.source_message is not None:
                candidates.append(target.source_message)
            message = next((m for m in candidates if m.find_component(custom_id) is not None), None)
            if message is None:
                raise CommandRefused(
                    f"no message of interaction {target.name!r} has a component {custom_id!r}"
                )
        else:
            message = (
                target if isinstance(target, Message) else self.core.world.message(int(target))
            )
        return self.interactions.button(message, custom_id, user_id)

    def disconnect(
        self, shard_id: int | None = None, *, code: int = 4000, invalidate: bool = False
    ) -> int:
        """Close the bot's connection(s) now; with ``invalidate`` its RESUME is refused (op 9)."""
        return self.core.gateway.disconnect(shard_id, code=code, invalidate=invalidate)

    def request_reconnect(self, shard_id: int | None = None) -> int:
        return self.core.gateway.request_reconnect(shard_id)

    def invalidate_session(self, shard_id: int | None = None) -> int:
        return self.core.gateway.invalidate(shard_id)

    # -- faults and limits -----------------------------------------------
    def inject_fault(
        self,
        method: str,
        route: str,
        kind: int | str,
        count: int = 1,
        *,
        retry_after: float = 1.0,
        hang_seconds: float = 1.0,
    ) -> Fault:
        """The next ``count`` matching calls get ``kind``.

        Kinds: 500, 403 (code 50013), 404 (code 10003), 429 (``retry_after``) or "hang".

        ``route`` is a template (``/channels/{channel_id}/messages``) or a glob
        on the concrete path (``/channels/*/messages``), without ``/api/v10``.
        A hang waits ``hang_seconds`` and then answers normally.
        """
        return self.core.faults.add(
            method, route, kind, count, retry_after=retry_after, hang_seconds=hang_seconds
        )

    def clear_faults(self) -> None:
        self.core.faults.clear()

    def exhaust_rate_limit(self, channel: ChannelRef, guild: GuildRef | None = None) -> None:
        """Spend a channel's message bucket, as if other posts had just used it."""
        self.core.rate_limiter.exhaust(POST_MESSAGE, str(self.channel(channel, guild).id))

    def advance_clock(self, seconds: float) -> None:
        """Let ``seconds`` pass for every window the sandbox enforces (interaction tokens,
        nonces, rate limits), without waiting."""
        self.config.clock.advance(seconds)
