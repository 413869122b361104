"""HTTP control API under ``/_sandbox/``: drive a long-running sandbox with curl.

No authentication (the sandbox listens on 127.0.0.1 only); these calls are
not recorded in ``calls``. Bodies and answers are JSON; ids may be strings or
numbers. Errors answer 400 ``{"error": "..."}``.

    GET  /_sandbox/                 addresses, token, endpoints
    GET  /_sandbox/state            guilds with channels, roles, members
    GET  /_sandbox/messages?channel_id=ID[&ephemeral=1]
    GET  /_sandbox/calls[?since=N]  REST calls from index N on
    GET  /_sandbox/unknown_routes
    GET  /_sandbox/role_changes
    GET  /_sandbox/sessions
    GET  /_sandbox/interactions/ID
    POST /_sandbox/guilds       {"name", "guild_id"?, "shard"?, "channels"?}
    POST /_sandbox/join         {"guild_id", "user_id"?, "username"?, "pending"?, "roles"?,
                                 "flags"?}
    POST /_sandbox/leave        {"guild_id", "user_id"}
    POST /_sandbox/update       {"guild_id", "user_id", "flags"?, "pending"?, "roles"?, "nick"?}
    POST /_sandbox/role         {"guild_id", "role_id", "permissions"?, "position"?}
    POST /_sandbox/ban          {"guild_id", "user_id", "reason"?}
    POST /_sandbox/unban        {"guild_id", "user_id"}
    POST /_sandbox/message      {"channel_id", "user_id", "content"}
    POST /_sandbox/command      {"guild_id", "user_id", "command": "dlq retry", "options"?,
                                 "channel_id"?, "wait"?}
    POST /_sandbox/autocomplete {"guild_id", "user_id", "command", "options"?, "focused", "wait"?}
    POST /_sandbox/button       {"interaction_id" | "message_id", "custom_id", "user_id", "wait"?}
    POST /_sandbox/grant        {"guild_id", "command", "target_id", "allow"?}
    POST /_sandbox/disconnect   {"shard_id"?, "code"?, "invalidate"?}
    POST /_sandbox/fault        {"method", "route", "kind", "count"?, "retry_after"?,
                                 "hang_seconds"?}
    POST /_sandbox/oauth/authorize  {"user_id", "client_id"?, "redirect_uri", "scope",
                                     "state"?, "code_challenge"?}: a user consents with no
                                     browser; answers {"redirect_url", "code", "state"}
    POST /_sandbox/oauth/app    {"client_secret"?, "redirect_uris"?}: the OAuth2 application
    GET  /_sandbox/oauth/tokens the OAuth2 tokens issued: live, revoked or expired

``wait`` (seconds) makes command/button answer after the bot's first reply.
Example::

    curl -s localhost:8765/_sandbox/join -d '{"guild_id": "123", "username": "alice"}'
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import SandboxError
from .interactions import InteractionHandle
from .server import json_response

if TYPE_CHECKING:
    from .scenario import Sandbox

JSON = dict[str, Any]
Action = Callable[[JSON], Awaitable[Any]]


def _id(data: JSON, key: str) -> int:
    try:
        return int(data[key])
    except KeyError:
        raise SandboxError(f"missing {key!r}") from None
    except (TypeError, ValueError):
        raise SandboxError(f"{key!r} must be a snowflake") from None


def _opt_id(data: JSON, key: str) -> int | None:
    return None if data.get(key) is None else _id(data, key)


def _ids(data: JSON, key: str) -> list[int] | None:
    return None if data.get(key) is None else [int(x) for x in data[key]]


def json_action(action: Action) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A POST handler: the JSON object body to ``action``, its answer as JSON, a refusal
    as 400 ``{"error"}`` (504 when a wait timed out)."""

    async def handler(request: web.Request) -> web.Response:
        try:
            data = json.loads(await request.text() or "{}")
            if not isinstance(data, dict):
                raise SandboxError("the body must be a JSON object")
            return json_response(await action(data))
        except (SandboxError, ValueError, TypeError) as exc:
            return json_response({"error": str(exc)}, status=400)
        except TimeoutError as exc:
            return json_response({"error": str(exc)}, status=504)

    return handler


class ControlRoutes:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get("/_sandbox/", self.index)
        router.add_get("/_sandbox/state", self.state)
        router.add_get("/_sandbox/messages", self.messages)
        router.add_get("/_sandbox/calls", self.calls)
        router.add_get("/_sandbox/unknown_routes", self.unknown_routes)
        router.add_get("/_sandbox/role_changes", self.role_changes)
        router.add_get("/_sandbox/sessions", self.sessions)
        router.add_get("/_sandbox/interactions/{interaction_id}", self.interaction)
        actions: dict[str, Action] = {
            "guilds": self.create_guild,
            "join": self.join,
            "leave": self.leave,
            "update": self.update,
            "role": self.role,
            "ban": self.ban,
            "unban": self.unban,
            "message": self.message,
            "command": self.command,
            "autocomplete": self.autocomplete,
            "button": self.button,
            "grant": self.grant,
            "disconnect": self.disconnect,
            "fault": self.fault,
        }
        for name, action in actions.items():
            router.add_post(f"/_sandbox/{name}", json_action(action))

    # -- reading ---------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        sb = self.sandbox
        return json_response(
            {
                "base_url": sb.base_url,
                "api_base": sb.api_url,
                "gateway": sb.gateway_url,
                "token": sb.token,
                "application_id": str(sb.application_id),
                "bot_user_id": str(sb.bot_user.id),
                "guilds": {str(g.id): g.name for g in sb.core.world.guilds.values()},
                "oauth": {
                    "authorize_url": sb.base_url + "/oauth2/authorize",
                    "token_url": sb.api_url + "/oauth2/token",
                    "revoke_url": sb.api_url + "/oauth2/token/revoke",
                    "client_id": sb.core.oauth.client_id,
                    "client_secret": sb.config.oauth_client_secret,
                    "redirect_uris": list(sb.config.oauth_redirect_uris),
                },
                "endpoints": [
                    r.resource.canonical
                    for r in request.app.router.routes()
                    if r.resource is not None and r.resource.canonical.startswith("/_sandbox")
                ],
            }
        )

    async def state(self, request: web.Request) -> web.Response:
        guilds = []
        for g in self.sandbox.core.world.guilds.values():
            guilds.append(
                {
                    "id": str(g.id),
                    "name": g.name,
                    "owner_id": str(g.owner_id),
                    "channels": {str(c.id): c.name for c in g.channels.values()},
                    "roles": {
                        str(r.id): {
                            "name": r.name,
                            "position": r.position,
                            "permissions": str(r.permissions),
                        }
                        for r in g.roles.values()
                    },
                    "members": {
                        str(m.id): {
                            "username": m.user.username,
                            "roles": [str(r) for r in m.roles],
                            "pending": m.pending,
                            "flags": m.flags,
                        }
                        for m in g.members.values()
                    },
                    "bans": [str(u) for u in g.bans],
                }
            )
        return json_response({"guilds": guilds, "commands": {"global": self.sandbox.commands()}})

    async def messages(self, request: web.Request) -> web.Response:
        try:
            channel = self.sandbox.channel(int(request.query["channel_id"]))
        except (KeyError, ValueError, SandboxError) as exc:
            return json_response({"error": f"channel_id: {exc}"}, status=400)
        found = self.sandbox.messages(
            channel, include_ephemeral=request.query.get("ephemeral") == "1"
        )
        return json_response([self.sandbox.core.message_payload(m) for m in found])

    async def calls(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        return json_response([dataclasses.asdict(c) for c in self.sandbox.calls[since:]])

    async def unknown_routes(self, request: web.Request) -> web.Response:
        return json_response([dataclasses.asdict(c) for c in self.sandbox.unknown_routes])

    async def role_changes(self, request: web.Request) -> web.Response:
        return json_response([dataclasses.asdict(c) for c in self.sandbox.role_changes])

    async def sessions(self, request: web.Request) -> web.Response:
        return json_response(
            [
                {
                    "session_id": s.session_id,
                    "shard": [s.shard_id, s.shard_count],
                    "intents": s.intents,
                    "connected": s.connected,
                    "resumable": s.resumable,
                    "resumes": s.resumes,
                    "seq": s.seq,
                }
                for s in self.sandbox.all_sessions
            ]
        )

    def _describe(self, handle: InteractionHandle) -> JSON:
        payload = self.sandbox.core.message_payload
        return {
            "interaction_id": str(handle.id),
            "name": handle.name,
            "type": handle.type,
            "response_type": handle.response_type,
            "replies": [{"type": r.type, "data": r.data} for r in handle.replies],
            "messages": [payload(m) for m in handle.messages],
            "choices": handle.choices,
            "modal": handle.modal,
        }

    async def interaction(self, request: web.Request) -> web.Response:
        handle = self.sandbox.interactions.by_id.get(int(request.match_info["interaction_id"]))
        if handle is None:
            return json_response({"error": "unknown interaction"}, status=404)
        return json_response(self._describe(handle))

    # -- acting ----------------------------------------------------------
    async def create_guild(self, data: JSON) -> JSON:
        guild = self.sandbox.create_guild(
            str(data.get("name", "Sandbox Guild")),
            guild_id=_opt_id(data, "guild_id"),
            shard=None if data.get("shard") is None else int(data["shard"]),
            channels=data.get("channels") or ("general",),
        )
        return {
            "guild_id": str(guild.id),
            "channels": {c.name: str(c.id) for c in guild.channels.values()},
        }

    async def join(self, data: JSON) -> JSON:
        member = self.sandbox.member_join(
            _id(data, "guild_id"),
            _opt_id(data, "user_id"),
            data.get("username"),
            pending=bool(data.get("pending", True)),
            roles=_ids(data, "roles") or [],
            flags=int(data.get("flags", 0)),
        )
        return {"user_id": str(member.id), "username": member.user.username}

    async def leave(self, data: JSON) -> JSON:
        self.sandbox.member_leave(_id(data, "guild_id"), _id(data, "user_id"))
        return {"ok": True}

    async def update(self, data: JSON) -> JSON:
        member = self.sandbox.member_update(
            _id(data, "guild_id"),
            _id(data, "user_id"),
            flags=None if data.get("flags") is None else int(data["flags"]),
            pending=data.get("pending"),
            roles=_ids(data, "roles"),
            nick=data.get("nick"),
        )
        return {
            "user_id": str(member.id),
            "roles": [str(r) for r in member.roles],
            "flags": member.flags,
        }

    async def role(self, data: JSON) -> JSON:
        """An admin edits a role: its permissions, or drags it to a position."""
        role = self.sandbox.edit_role(
            _id(data, "guild_id"),
            _id(data, "role_id"),
            permissions=None if data.get("permissions") is None else int(data["permissions"]),
            position=None if data.get("position") is None else int(data["position"]),
        )
        return {"role_id": str(role.id), "permissions": str(role.permissions),
                "position": role.position}

    async def ban(self, data: JSON) -> JSON:
        self.sandbox.ban(_id(data, "guild_id"), _id(data, "user_id"), reason=data.get("reason"))
        return {"ok": True}

    async def unban(self, data: JSON) -> JSON:
        self.sandbox.unban(_id(data, "guild_id"), _id(data, "user_id"))
        return {"ok": True}

    async def message(self, data: JSON) -> JSON:
        message = self.sandbox.user_message(
            _id(data, "channel_id"), _id(data, "user_id"), str(data.get("content", ""))
        )
        return {"message_id": str(message.id)}

    async def _answer(self, handle: InteractionHandle, data: JSON) -> JSON:
        if data.get("wait"):
            await handle.wait_reply(float(data["wait"]))
        return self._describe(handle)

    async def command(self, data: JSON) -> JSON:
        handle = self.sandbox.slash_command(
            _id(data, "guild_id"),
            _id(data, "user_id"),
            str(data.get("command", "")),
            data.get("options") or {},
            channel=_opt_id(data, "channel_id"),
        )
        return await self._answer(handle, data)

    async def autocomplete(self, data: JSON) -> JSON:
        choices = await self.sandbox.autocomplete(
            _id(data, "guild_id"),
            _id(data, "user_id"),
            str(data.get("command", "")),
            data.get("options") or {},
            focused=str(data.get("focused", "")),
            timeout=float(data.get("wait", 5.0)),
        )
        return {"choices": choices}

    async def button(self, data: JSON) -> JSON:
        target: InteractionHandle | int
        if data.get("interaction_id") is not None:
            found = self.sandbox.interactions.by_id.get(_id(data, "interaction_id"))
            if found is None:
                raise SandboxError("unknown interaction_id")
            target = found
        else:
            target = _id(data, "message_id")
        handle = self.sandbox.press_button(
            target, str(data.get("custom_id", "")), _id(data, "user_id")
        )
        return await self._answer(handle, data)

    async def grant(self, data: JSON) -> JSON:
        self.sandbox.grant_command(
            _id(data, "guild_id"),
            str(data.get("command", "")),
            _id(data, "target_id"),
            allow=bool(data.get("allow", True)),
        )
        return {"ok": True}

    async def disconnect(self, data: JSON) -> JSON:
        closed = self.sandbox.disconnect(
            None if data.get("shard_id") is None else int(data["shard_id"]),
            code=int(data.get("code", 4000)),
            invalidate=bool(data.get("invalidate", False)),
        )
        return {"closed": closed}

    async def fault(self, data: JSON) -> JSON:
        fault = self.sandbox.inject_fault(
            str(data.get("method", "*")),
            str(data.get("route", "")),
            str(data.get("kind", "")),
            int(data.get("count", 1)),
            retry_after=float(data.get("retry_after", 1.0)),
            hang_seconds=float(data.get("hang_seconds", 1.0)),
        )
        return dataclasses.asdict(fault)
