"""The aiohttp application: REST under ``/api/v10``, gateway at ``/gateway``, control API.

Every request under ``/api/v10`` (and any other path that is not the gateway
or the control API) is recorded as a :class:`~sandbox.records.Call`. The
middleware, in order: answers an unknown route with 404
``{"message": "404: Not Found", "code": 0}`` and records it in
``unknown_routes``; checks ``Authorization: Bot <token>`` (401 otherwise)
except on the interaction callback and webhook routes, where the token in the
path is the credential, and the OAuth2 routes, which authenticate the client
themselves; accepts a user's ``Authorization: Bearer <access token>`` on the
few routes Discord serves to users (``BEARER_ROUTES``) and nowhere else (401,
as Discord answers a user token on a bot route); applies an injected fault;
runs the handler, turning an :class:`~sandbox.errors.ApiError` into Discord's
JSON error.

JSON answers carry ``Content-Type: application/json`` exactly (discord.py
treats ``application/json; charset=utf-8`` as text) and every answer carries
``Via`` (discord.py treats a 429 without it as a Cloudflare ban).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, web

from .core import Core
from .errors import ApiError
from .limits import Fault
from .oauth import Token
from .records import Call

API_PREFIX = "/api/v10"
UNKNOWN_ROUTE = "sandbox-unknown-route"
PUBLIC_ROUTES = frozenset(
    {
        "/interactions/{interaction_id}/{interaction_token}/callback",
        "/webhooks/{application_id}/{interaction_token}",
        "/webhooks/{application_id}/{interaction_token}/messages/{message_id}",
        "/oauth2/authorize",
        "/oauth2/token",
        "/oauth2/token/revoke",
    }
)
# Routes that take a user's Bearer token as well as the bot's; handlers read the token's
# user and scopes with bearer_of(request).
BEARER_ROUTES = frozenset(
    {"/users/@me", "/users/@me/guilds", "/users/@me/guilds/{guild_id}/member"}
)
# Form fields never kept in the record of a call.
SECRET_FIELDS = frozenset({"client_secret"})

JSON = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def no_content() -> web.Response:
    return web.Response(status=204)


@dataclass
class Body:
    json: Any = None
    attachments: list[JSON] = field(default_factory=list)
    # An application/x-www-form-urlencoded body (the OAuth2 token endpoints, the consent form).
    form: dict[str, str] | None = None

    @property
    def obj(self) -> JSON:
        return self.json if isinstance(self.json, dict) else {}


async def read_body(request: web.Request) -> Body:
    """JSON, or multipart with ``payload_json`` plus files (kept as attachment stubs)."""
    if not request.can_read_body:
        return Body()
    if request.content_type == "multipart/form-data":
        body = Body()
        reader = await request.multipart()
        index = 0
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            raw = await part.read()
            if part.name == "payload_json":
                body.json = json.loads(raw or b"null")
            elif part.filename:
                body.attachments.append(
                    {
                        "id": str(index),
                        "filename": part.filename,
                        "size": len(raw),
                        "url": f"https://cdn.sandbox.invalid/attachments/{part.filename}",
                        "proxy_url": f"https://media.sandbox.invalid/attachments/{part.filename}",
                        "content_type": part.headers.get(
                            "Content-Type", "application/octet-stream"
                        ),
                    }
                )
                index += 1
        return body
    raw_text = await request.text()
    if request.content_type == "application/x-www-form-urlencoded":
        form = dict(parse_qsl(raw_text, keep_blank_values=True))
        recorded = {k: "[redacted]" if k in SECRET_FIELDS else v for k, v in form.items()}
        return Body(json=recorded, form=form)
    try:
        return Body(json=json.loads(raw_text) if raw_text else None)
    except ValueError:
        return Body(json=raw_text)


def body_of(request: web.Request) -> Body:
    return request[BODY_KEY]


BODY_KEY = web.RequestKey("sandbox_body", Body)
BEARER_KEY = web.RequestKey("sandbox_bearer", Token)


def bearer_of(request: web.Request) -> Token | None:
    """The user's live OAuth2 token when the request came with ``Bearer``, else None."""
    return request.get(BEARER_KEY)


def rate_limited_body(retry_after: float) -> JSON:
    return {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}


def _fault_response(fault: Fault) -> web.Response:
    if fault.kind == "500":
        return json_response({"message": "500: Internal Server Error", "code": 0}, status=500)
    if fault.kind == "403":
        return json_response({"message": "Missing Permissions", "code": 50013}, status=403)
    if fault.kind == "404":
        return json_response({"message": "Unknown Channel", "code": 10003}, status=404)
    headers = {
        "X-RateLimit-Limit": "1",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{time.time() + fault.retry_after:.3f}",
        "X-RateLimit-Reset-After": f"{fault.retry_after:.3f}",
        "X-RateLimit-Bucket": "sandbox-fault",
        "X-RateLimit-Scope": "user",
        "Retry-After": str(max(1, round(fault.retry_after))),
    }
    return json_response(rate_limited_body(fault.retry_after), status=429, headers=headers)


class Server:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.app = web.Application(middlewares=[self._middleware], client_max_size=32 * 1024 * 1024)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.host = "127.0.0.1"

    def add_api_route(self, method: str, template: str, handler: Handler) -> None:
        self.app.router.add_route(method, API_PREFIX + template, handler)

    def finish_routes(self) -> None:
        """Call after all routes are added: the gateway, then the catch-all for unknown routes."""
        self.app.router.add_get("/gateway", self.core.gateway.handle)
        self.app.router.add_route("*", "/{tail:.*}", self._unknown, name=UNKNOWN_ROUTE)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        self.host = host
        return self.port

    async def stop(self) -> None:
        await self.core.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _unknown(self, request: web.Request) -> web.Response:
        return json_response({"message": "404: Not Found", "code": 0}, status=404)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path == "/gateway" or path.startswith("/_sandbox/"):
            return await handler(request)
        started = time.monotonic()
        route = request.match_info.route
        unknown = route.name == UNKNOWN_ROUTE
        template = None if unknown else (route.resource.canonical if route.resource else path)
        template = None if template is None else template.removeprefix(API_PREFIX)
        relative = path.removeprefix(API_PREFIX)
        body = await read_body(request)
        request[BODY_KEY] = body
        header = request.headers.get("Authorization")
        authorized = header == f"Bot {self.core.config.token}"
        bearer = None if authorized else self.core.oauth.bearer(header)
        if bearer is not None and template in BEARER_ROUTES:
            request[BEARER_KEY] = bearer
        fault: Fault | None = None
        if unknown:
            response: web.StreamResponse = await self._unknown(request)
        elif template not in PUBLIC_ROUTES and not authorized and BEARER_KEY not in request:
            response = json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        else:
            fault = self.core.faults.take(request.method, relative, template)
            if fault is not None and fault.kind != "hang":
                response = _fault_response(fault)
            else:
                if fault is not None:
                    await asyncio.sleep(fault.hang_seconds)
                try:
                    response = await handler(request)
                except ApiError as exc:
                    response = json_response(exc.body(), status=exc.status)
        response.headers["Via"] = "1.1 google"
        self.core.recorder.call(
            Call(
                method=request.method,
                path=relative,
                route=template,
                query=dict(request.query),
                json=body.json,
                status=response.status,
                at=time.time(),
                duration=time.monotonic() - started,
                authorized=authorized,
                fault=None if fault is None else fault.kind,
                bearer_user=None if bearer is None else str(bearer.user_id),
            ),
            unknown=unknown,
        )
        return response
