"""REST routes for login, gateway discovery, command sync, guilds, members, roles and bans.

Moderation routes check the bot's own rights like Discord: MANAGE_ROLES,
KICK_MEMBERS or BAN_MEMBERS, and the role hierarchy (the bot only manages
roles and members below its highest role), answering 403 code 50013 otherwise.
Role and member changes answer 204 and then dispatch GUILD_MEMBER_UPDATE,
GUILD_MEMBER_REMOVE or GUILD_BAN_ADD/REMOVE, as Discord does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from aiohttp import web

from . import errors, payloads
from .core import Core
from .permissions import Perm
from .server import Server, body_of, json_response, no_content

JSON = dict[str, Any]


def _int(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    try:
        return int(raw)
    except ValueError:
        raise errors.invalid_form(
            name, "NUMBER_TYPE_COERCE", f'Value "{raw}" is not snowflake.'
        ) from None


def _reason(request: web.Request) -> str | None:
    raw = request.headers.get("X-Audit-Log-Reason")
    return None if raw is None else unquote(raw)


class RestRoutes:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.world = core.world

    def register(self, server: Server) -> None:
        add = server.add_api_route
        add("POST", "/users/@me/channels", self.create_dm)
        add("GET", "/users/{user_id}", self.get_user)
        add("GET", "/oauth2/applications/@me", self.get_application)
        add("GET", "/applications/@me", self.get_application)
        add("GET", "/gateway", self.get_gateway)
        add("GET", "/gateway/bot", self.get_gateway_bot)
        for prefix in (
            "/applications/{application_id}",
            "/applications/{application_id}/guilds/{guild_id}",
        ):
            add("GET", prefix + "/commands", self.list_commands)
            add("PUT", prefix + "/commands", self.overwrite_commands)
            add("POST", prefix + "/commands", self.upsert_command)
            add("GET", prefix + "/commands/{command_id}", self.get_command)
            add("DELETE", prefix + "/commands/{command_id}", self.delete_command)
        add(
            "GET",
            "/applications/{application_id}/guilds/{guild_id}/commands/permissions",
            self.all_command_permissions,
        )
        add(
            "GET",
            "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}/permissions",
            self.command_permissions,
        )
        add("GET", "/guilds/{guild_id}", self.get_guild)
        add("GET", "/guilds/{guild_id}/channels", self.get_guild_channels)
        add("GET", "/guilds/{guild_id}/roles", self.get_roles)
        add("GET", "/guilds/{guild_id}/members", self.list_members)
        add("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member)
        add("PATCH", "/guilds/{guild_id}/members/{user_id}", self.edit_member)
        add("DELETE", "/guilds/{guild_id}/members/{user_id}", self.kick)
        add("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", self.add_role)
        add("DELETE", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", self.remove_role)
        add("GET", "/guilds/{guild_id}/bans", self.list_bans)
        add("GET", "/guilds/{guild_id}/bans/{user_id}", self.get_ban)
        add("PUT", "/guilds/{guild_id}/bans/{user_id}", self.ban)
        add("DELETE", "/guilds/{guild_id}/bans/{user_id}", self.unban)

    # -- users, application, gateway -------------------------------------
    async def get_user(self, request: web.Request) -> web.Response:
        return json_response(payloads.user(self.world.user(_int(request, "user_id"))))

    async def create_dm(self, request: web.Request) -> web.Response:
        recipient = self.world.user(int(body_of(request).obj.get("recipient_id", 0)))
        channel = self.world.dm_channel(recipient)
        return json_response(payloads.channel(channel, recipient=recipient))

    async def get_application(self, request: web.Request) -> web.Response:
        core = self.core
        owner = next((u for u in self.world.users.values() if not u.bot), core.bot)
        body = payloads.application(
            application_id=core.application_id,
            name=core.bot.username,
            owner=owner,
            flags=core.config.application_flags(),
        )
        return json_response(body)

    async def get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.core.gateway.url})

    async def get_gateway_bot(self, request: web.Request) -> web.Response:
        body = payloads.gateway_bot(
            url=self.core.gateway.url, shards=self.core.config.shard_count, remaining=999
        )
        return json_response(body)

    # -- application commands --------------------------------------------
    def _command_scope(self, request: web.Request) -> int | None:
        if _int(request, "application_id") != self.core.application_id:
            raise errors.Forbidden(
                20012, "You are not authorized to perform this action on this application"
            )
        if "guild_id" not in request.match_info:
            return None
        guild_id = _int(request, "guild_id")
        self.world.guild(guild_id)
        return guild_id

    async def list_commands(self, request: web.Request) -> web.Response:
        guild_id = self._command_scope(request)
        commands = self.core.commands
        return json_response(
            commands.global_commands
            if guild_id is None
            else commands.guild_commands.get(guild_id, [])
        )

    async def overwrite_commands(self, request: web.Request) -> web.Response:
        guild_id = self._command_scope(request)
        definitions = body_of(request).json
        if not isinstance(definitions, list):
            raise errors.invalid_form("_root", "BASE_TYPE_ARRAY", "Must be an array.")
        return json_response(
            self.core.commands.bulk_overwrite(definitions, guild_id, self.core.application_id)
        )

    async def upsert_command(self, request: web.Request) -> web.Response:
        guild_id = self._command_scope(request)
        stored = self.core.commands.upsert(body_of(request).obj, guild_id, self.core.application_id)
        return json_response(stored, status=201)

    async def get_command(self, request: web.Request) -> web.Response:
        command = self.core.commands.get(_int(request, "command_id"), self._command_scope(request))
        if command is None:
            raise errors.unknown("application command", errors.UNKNOWN_APPLICATION_COMMAND)
        return json_response(command)

    async def delete_command(self, request: web.Request) -> web.Response:
        if not self.core.commands.delete(_int(request, "command_id"), self._command_scope(request)):
            raise errors.unknown("application command", errors.UNKNOWN_APPLICATION_COMMAND)
        return no_content()

    def _permissions_payload(self, guild_id: int, command_id: int) -> JSON:
        return payloads.command_permissions(
            command_id=command_id,
            application_id=self.core.application_id,
            guild_id=guild_id,
            grants=self.core.commands.overrides_for(guild_id, command_id),
        )

    async def all_command_permissions(self, request: web.Request) -> web.Response:
        guild_id = self._command_scope(request)
        assert guild_id is not None
        keys = [cid for (gid, cid) in self.core.commands.overrides if gid == guild_id]
        return json_response([self._permissions_payload(guild_id, cid) for cid in keys])

    async def command_permissions(self, request: web.Request) -> web.Response:
        guild_id = self._command_scope(request)
        assert guild_id is not None
        command_id = _int(request, "command_id")
        if not self.core.commands.overrides_for(guild_id, command_id):
            raise errors.NotFound(10066, "Unknown application command permissions")
        return json_response(self._permissions_payload(guild_id, command_id))

    # -- guilds and members ----------------------------------------------
    async def get_guild(self, request: web.Request) -> web.Response:
        return json_response(payloads.guild_rest(self.world.guild(_int(request, "guild_id"))))

    async def get_guild_channels(self, request: web.Request) -> web.Response:
        guild = self.world.guild(_int(request, "guild_id"))
        return json_response(
            [payloads.channel(c) for c in guild.channels.values() if not c.deleted]
        )

    async def get_roles(self, request: web.Request) -> web.Response:
        guild = self.world.guild(_int(request, "guild_id"))
        return json_response(
            [payloads.role(r) for r in sorted(guild.roles.values(), key=lambda r: r.position)]
        )

    async def list_members(self, request: web.Request) -> web.Response:
        guild = self.world.guild(_int(request, "guild_id"))
        limit = min(int(request.query.get("limit", "1")), 1000)
        after = int(request.query.get("after", "0"))
        members = sorted((m for m in guild.members.values() if m.id > after), key=lambda m: m.id)[
            :limit
        ]
        return json_response([payloads.member(m) for m in members])

    async def get_member(self, request: web.Request) -> web.Response:
        guild = self.world.guild(_int(request, "guild_id"))
        return json_response(payloads.member(guild.member(_int(request, "user_id"))))

    async def edit_member(self, request: web.Request) -> web.Response:
        guild = self.world.guild(_int(request, "guild_id"))
        user_id = _int(request, "user_id")
        member = guild.member(user_id)
        body = body_of(request).obj
        roles: list[int] | None = None
        if body.get("roles") is not None:
            self.core.require_guild_permission(guild, Perm.MANAGE_ROLES)
            roles = [int(r) for r in body["roles"]]
            for role_id in set(roles) ^ set(member.roles):
                self.core.require_above(guild, guild.role(role_id).position)
        if "nick" in body:
            if user_id != self.core.bot.id:
                self.core.require_guild_permission(guild, Perm.MANAGE_NICKNAMES)
        updated = self.core.member_update(
            guild,
            user_id,
            roles=roles,
            nick=body.get("nick"),
            clear_nick="nick" in body and body["nick"] is None,
            source="rest",
        )
        return json_response(payloads.member(updated))

    async def kick(self, request: web.Request) -> web.Response:
        guild = self.world.guild(_int(request, "guild_id"))
        user_id = _int(request, "user_id")
        guild.member(user_id)
        self.core.require_guild_permission(guild, Perm.KICK_MEMBERS)
        if user_id == guild.owner_id:
            raise errors.missing_permissions()
        self.core.require_above(guild, guild.top_position(user_id))
        self.core.member_remove(guild, user_id)
        return no_content()

    def _role_target(self, request: web.Request) -> tuple[Any, int, int]:
        guild = self.world.guild(_int(request, "guild_id"))
        user_id = _int(request, "user_id")
        role = guild.role(_int(request, "role_id"))
        guild.member(user_id)
        self.core.require_guild_permission(guild, Perm.MANAGE_ROLES)
        if role.is_everyone or role.managed:
            raise errors.missing_permissions()
        self.core.require_above(guild, role.position)
        return guild, user_id, role.id

    async def add_role(self, request: web.Request) -> web.Response:
        guild, user_id, role_id = self._role_target(request)
        self.core.add_member_role(guild, user_id, role_id, source="rest")
        return no_content()

    async def remove_role(self, request: web.Request) -> web.Response:
        guild, user_id, role_id = self._role_target(request)
        self.core.remove_member_role(guild, user_id, role_id, source="rest")
        return no_content()

    # -- bans ------------------------------------------------------------
    async def list_bans(self, request: web.Request) -> web.Response:
        guild = self.world.guild(_int(request, "guild_id"))
        self.core.require_guild_permission(guild, Perm.BAN_MEMBERS)
        return json_response([payloads.ban(b.user, b.reason) for b in guild.bans.values()])

    async def get_ban(self, request: web.Request) -> web.Response:
        guild = self.world.guild(_int(request, "guild_id"))
        self.core.require_guild_permission(guild, Perm.BAN_MEMBERS)
        ban = guild.bans.get(_int(request, "user_id"))
        if ban is None:
            raise errors.unknown("Ban", errors.UNKNOWN_BAN)
        return json_response(payloads.ban(ban.user, ban.reason))

    async def ban(self, request: web.Request) -> web.Response:
        guild = self.world.guild(_int(request, "guild_id"))
        user = self.world.user(_int(request, "user_id"))
        self.core.require_guild_permission(guild, Perm.BAN_MEMBERS)
        if user.id in guild.members:
            if user.id == guild.owner_id:
                raise errors.missing_permissions()
            self.core.require_above(guild, guild.top_position(user.id))
        self.core.ban(guild, user, _reason(request))
        return no_content()

    async def unban(self, request: web.Request) -> web.Response:
        guild = self.world.guild(_int(request, "guild_id"))
        self.core.require_guild_permission(guild, Perm.BAN_MEMBERS)
        self.core.unban(guild, _int(request, "user_id"))
        return no_content()
