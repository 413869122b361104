"""``Sandbox``: start a local Discord look-alike and drive it from a test or a demo.

Injections (member joins, bans, slash commands, button presses) are plain
calls: they change the world and queue the gateway events at once. Methods
that wait for the bot are coroutines with a timeout; they wake on every
change in the sandbox, never by sleeping.

    async with Sandbox() as sandbox:
        guild = sandbox.create_guild("Test", roles={"Staff": Perm.MANAGE_GUILD})
        with client_overrides(sandbox.base_url):
            runner = asyncio.create_task(bot.start(sandbox.token))
            await sandbox.wait_for_sessions(1)
            sandbox.member_join(guild, 42, "alice")
            handle = sandbox.slash_command(guild, guild.owner_id, "dlq retry", {"job": 7})
            reply = await handle.wait_reply()
            await bot.close()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .commands import OVERRIDE_ROLE, OVERRIDE_USER
from .config import SandboxConfig
from .control import ControlRoutes
from .core import Core
from .errors import CommandRefused, SandboxError
from .interaction_handle import InteractionHandle
from .interactions import Interactions
from .limits import Fault
from .models import Channel, Guild, Member, Message, Role, User
from .oauth_routes import OAuthRoutes
from .permissions import DEFAULT_BOT_PERMISSIONS, DEFAULT_EVERYONE, Perm
from .persistence import WorldStore
from .readback import ChannelRef, GuildRef, ReadBack
from .rest import RestRoutes
from .rest_messages import POST_MESSAGE, MessageRoutes
from .server import Server
from .validation import validate_nonce
from .world import World


class Sandbox(ReadBack):
    def __init__(self, config: SandboxConfig | None = None, **settings: Any) -> None:
        if config is not None and settings:
            raise TypeError("pass either a SandboxConfig or keyword settings, not both")
        self.config = config or SandboxConfig(**settings)
        self.core = Core(self.config)
        self.interactions = Interactions(self.core)
        self.server = Server(self.core)
        RestRoutes(self.core).register(self.server)
        MessageRoutes(self.core, self.interactions).register(self.server)
        ControlRoutes(self).register(self.server.app.router)
        OAuthRoutes(self).register(self.server)
        self.server.finish_routes()
        self.store: WorldStore | None = None
        # True when start() found a saved world in config.data_dir and loaded it.
        self.resumed = False

    # -- lifetime --------------------------------------------------------
    async def start(self, port: int = 0, host: str = "127.0.0.1") -> Sandbox:
        """Serve on ``port``; with ``config.data_dir``, first load the saved world (once: a
        restart of the same Sandbox keeps the world it has) and keep saving it.

        Raises WorldFileError, naming the file, when the saved world cannot be read.
        """
        if self.config.data_dir is not None:
            if self.store is None:
                self.store = WorldStore(
                    self.core, self.config.data_dir, delay=self.config.save_delay
                )
                self.resumed = self.store.load()
            self.store.attach()
        bound = await self.server.start(host, port)
        self.core.gateway.url = f"ws://{host}:{bound}/gateway"
        return self

    async def stop(self) -> None:
        try:
            await self.server.stop()
        finally:
            if self.store is not None:
                await self.store.close()

    async def __aenter__(self) -> Sandbox:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def base_url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/v10"

    @property
    def gateway_url(self) -> str:
        return self.core.gateway.url

    @property
    def token(self) -> str:
        return self.config.token

    @property
    def application_id(self) -> int:
        return self.core.application_id

    @property
    def bot_user(self) -> User:
        return self.core.bot

    @property
    def world(self) -> World:
        return self.core.world

    # -- building the world ----------------------------------------------
    def create_guild(
        self,
        name: str = "Sandbox Guild",
        *,
        guild_id: int | None = None,
        shard: int | None = None,
        owner_id: int | None = None,
        owner_name: str = "owner",
        channels: Iterable[str] = ("general",),
        roles: Mapping[str, int] | None = None,
        bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
        everyone_permissions: int = DEFAULT_EVERYONE,
    ) -> Guild:
        """A guild with an owner, the bot (with a managed role) and text channels.

        ``shard`` picks an id on that shard of ``config.shard_count``; ``roles``
        maps names to permission bits, created in order below the bot's role
        (so the bot may assign them; pass ``position`` to ``add_role`` to put
        one above it).
        """
        world = self.core.world
        if shard is not None:
            if guild_id is not None:
                raise TypeError("give guild_id or shard, not both")
            guild_id = world.ids.for_shard(shard, self.config.shard_count)
        guild = world.create_guild(
            name,
            guild_id=guild_id,
            owner_id=owner_id,
            owner_name=owner_name,
            bot_permissions=bot_permissions,
            everyone_permissions=everyone_permissions,
        )
        for channel_name in channels:
            world.add_channel(guild, channel_name)
        for role_name, permissions in (roles or {}).items():
            world.add_role(guild, role_name, permissions=permissions)
        self.core.guild_joined(guild)
        return guild

    def add_role(
        self, guild: GuildRef, name: str, *, permissions: int = 0, position: int | None = None
    ) -> Role:
        return self.core.add_role(
            self.guild(guild), name, permissions=permissions, position=position
        )

    def edit_role(
        self,
        guild: GuildRef,
        role: Role | int,
        *,
        permissions: int | None = None,
        position: int | None = None,
    ) -> Role:
        """Change a role's permissions or drag it to ``position`` (1 = just above @everyone;
        the others are renumbered, as in Discord); connected bots get GUILD_ROLE_UPDATE."""
        target = self.guild(guild)
        found = target.role(role if isinstance(role, int) else role.id)
        return self.core.edit_role(target, found, permissions=permissions, position=position)

    def delete_role(self, guild: GuildRef, role: Role | int) -> None:
        """Delete a role (not @everyone nor a managed one); GUILD_ROLE_DELETE."""
        target = self.guild(guild)
        self.core.delete_role(target, target.role(role if isinstance(role, int) else role.id))

    def bot_role(self, guild: GuildRef) -> Role:
        """The bot's own (managed) role in a guild."""
        found = self.core.world.bot_role(self.guild(guild))
        if found is None:
            raise SandboxError("the bot has no role of its own in this guild")
        return found

    def add_channel(
        self, guild: GuildRef, name: str, *, channel_id: int | None = None, topic: str | None = None
    ) -> Channel:
        return self.core.add_channel(self.guild(guild), name, channel_id=channel_id, topic=topic)

    def delete_channel(self, channel: ChannelRef, guild: GuildRef | None = None) -> None:
        """Later posts to it answer 404 code 10003."""
        self.core.delete_channel(self.channel(channel, guild))

    def deny_channel(
        self,
        channel: ChannelRef,
        guild: GuildRef | None = None,
        *,
        permissions: int = Perm.SEND_MESSAGES,
    ) -> None:
        """A member overwrite denying the bot ``permissions``; posts then answer 403 code 50013."""
        target = self.channel(channel, guild)
        self.core.set_overwrite(target, self.core.bot.id, 1, deny=int(permissions))

    def allow_channel(self, channel: ChannelRef, guild: GuildRef | None = None) -> None:
        self.core.set_overwrite(self.channel(channel, guild), self.core.bot.id, 1)

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

    def seed_demo(self) -> Guild:
        """A guild to play with: #general, #welcome, #mod-log, a Staff role and a staff member."""
        guild = self.create_guild(
            "Lifeline Demo",
            owner_name="demo-owner",
            channels=("general", "welcome", "mod-log"),
            roles={
                "Member": 0,
                "Staff": int(Perm.MANAGE_GUILD | Perm.KICK_MEMBERS | Perm.BAN_MEMBERS),
            },
        )
        staff = guild.role_named("Staff")
        self.member_join(guild, None, "demo-staff", pending=False, roles=[staff.id])
        return guild
