"""``Sandbox``: start a local Discord look-alike and drive it from a test or a demo.

Injections (member joins, bans, slash commands, button presses) are plain
calls: they change the world and queue the gateway events at once. Methods
that wait for the bot are coroutines with a timeout; they wake on every
change in the sandbox, never by sleeping.

This module holds the sandbox's lifetime, its addresses and the building of its
world (guilds, roles, channels); the injections are :class:`~sandbox.injections.Injections`
and the reads and waits :class:`~sandbox.readback.ReadBack`, both bases of :class:`Sandbox`.

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

from .config import SandboxConfig
from .control import ControlRoutes
from .core import Core
from .errors import SandboxError
from .injections import Injections
from .interactions import Interactions
from .models import Channel, Guild, Role, User
from .oauth_routes import OAuthRoutes
from .permissions import DEFAULT_BOT_PERMISSIONS, DEFAULT_EVERYONE, Perm
from .persistence import WorldStore
from .readback import ChannelRef, GuildRef
from .rest import RestRoutes
from .rest_messages import MessageRoutes
from .server import Server
from .world import World


class Sandbox(Injections):
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
