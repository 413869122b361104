"""HTTP control API under ``/_sandbox/``: drive a long-running sandbox with curl.

No authentication (the sandbox listens on 127.0.0.1 only); these calls are
not recorded in ``calls``. Bodies and answers are JSON; ids may be strings or
numbers. Errors answer 400 ``{"error": "..."}``.

Every endpoint, with its body, is in ``control_endpoints.ENDPOINTS`` and answered by
``GET /_sandbox/``.

``wait`` (seconds) makes command/button answer once the bot's reply can be read (after a
"thinking" deferral, its answer); ``text`` holds the readable messages' text.
Example::

    curl -s localhost:8765/_sandbox/join -d '{"guild_id": "123", "username": "alice"}'
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .control_endpoints import described
from .errors import SandboxError
from .interaction_handle import InteractionHandle
from .models import MemberFlag

if TYPE_CHECKING:
    from .scenario import Sandbox

JSON = dict[str, Any]
DEFERRED_MESSAGE = 5  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: "thinking", the answer follows
Action = Callable[[JSON], Awaitable[Any]]


def json_response(data: Any, *, status: int = 200) -> web.Response:
    """JSON ending with a newline: curl's output does not run into the shell's prompt."""
    return web.Response(text=json.dumps(data) + "\n", status=status,
                        content_type="application/json")


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
            "onboard": self.onboard,
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
                "endpoints": described(),
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
            "text": [m.text for m in handle.messages if not m.loading],
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

    async def onboard(self, data: JSON) -> JSON:
        """Join (unless a member), start and complete onboarding, pass the rules screen.

        Each step is its own change, so the bot receives the gateway events a person's
        first minutes produce, in order; ``until`` stops earlier.
        """
        steps = ("joined", "started_onboarding", "completed_onboarding", "rules_accepted")
        until = str(data.get("until", steps[-1]))
        if until not in steps:
            raise SandboxError(f"'until' must be one of {', '.join(steps)}")
        guild = self.sandbox.guild(_id(data, "guild_id"))
        user_id = _opt_id(data, "user_id")
        done: list[str] = []
        if user_id is None or user_id not in guild.members:
            user_id = self.sandbox.member_join(guild, user_id, data.get("username"),
                                               pending=True).id
            done.append("joined")
        member = guild.members[user_id]
        wanted = {
            "started_onboarding": lambda: member.flags | MemberFlag.STARTED_ONBOARDING,
            "completed_onboarding": lambda: member.flags | MemberFlag.COMPLETED_ONBOARDING,
        }
        for step in steps[1:steps.index(until) + 1]:
            if step in wanted and wanted[step]() != member.flags:
                self.sandbox.member_update(guild, user_id, flags=int(wanted[step]()))
                done.append(step)
            elif step == "rules_accepted" and member.pending:
                self.sandbox.member_update(guild, user_id, pending=False)
                done.append(step)
        return {"user_id": str(user_id), "username": member.user.username, "events": done,
                "flags": member.flags, "pending": member.pending}

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
        """With ``wait``, answer once the bot's reply can be read: a bot that first says
        "thinking" (a deferral, as Lifeline always does) is waited for until its answer."""
        if data.get("wait"):
            timeout = float(data["wait"])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            reply = await handle.wait_reply(timeout)
            if reply.type == DEFERRED_MESSAGE:
                await handle.wait_message(max(0.0, deadline - loop.time()))
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
