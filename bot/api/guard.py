"""What every request passes before a route sees it (pure ASGI, so nothing is read early).

In order: a credential in the query string is refused (URLs end up in logs and browser
history); `/api/v1` needs `Authorization: Bearer <API_TOKEN>`, compared in constant time;
a body over the limit is refused with 413, by its Content-Length before anything is read, and
by counting the bytes of a streamed (chunked) body. Starlette's own body limiter answers in
plain text and only once a route reads the body; this one answers before any route runs.
The access log written here never contains the query string.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.commands import correlation_scope
from domain.redaction import redact

access_log = logging.getLogger("bot.api.access")

MAX_BODY_BYTES = 64 * 1024
PROTECTED_PREFIX = "/api/v1/"
PUBLIC_PATHS = frozenset({"/api/v1/openapi.json", "/api/v1/docs"})
# The docs page's own files (swagger-ui, served from the package): static, no data.
PUBLIC_PREFIXES = ("/api/v1/docs/assets/",)
CREDENTIAL_PARAMS = frozenset({
    "token", "access_token", "api_token", "apitoken", "api_key", "apikey", "key", "auth",
    "authorization", "bearer", "secret", "password",
})
CORRELATION_HEADER = "x-correlation-id"
_CORRELATION_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def token_in_query(query_string: bytes, token: bytes) -> bool:
    if not query_string:
        return False
    if token in query_string:
        return True
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name.strip().lower() in CREDENTIAL_PARAMS:
            return True
        if hmac.compare_digest(value.encode("utf-8", "surrogateescape"), token):
            return True
    return False


def bearer_matches(authorization: bytes | None, token: bytes) -> bool:
    if not authorization:
        return False
    scheme, _, credential = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return hmac.compare_digest(credential.strip(), token)


async def send_error(send: Send, status: int, error: str, detail: str,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    def __init__(self, app: ASGIApp, *, token: str, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.token = token.encode("utf-8")
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if token_in_query(scope.get("query_string", b""), self.token):
            await send_error(send, 401, "token_in_query",
                             "credentials are accepted only in the Authorization header, "
                             "never in the URL; this request was refused")
            return
        headers = Headers(scope=scope)
        path: str = scope["path"]
        if path.startswith(PROTECTED_PREFIX) and path not in PUBLIC_PATHS \
                and not path.startswith(PUBLIC_PREFIXES):
            raw = headers.getlist("authorization")
            if len(raw) != 1 or not bearer_matches(raw[0].encode("latin-1"), self.token):
                detail = ("missing Authorization header: send Authorization: Bearer <API_TOKEN>"
                          if not raw else "wrong bearer token")
                await send_error(send, 401, "unauthorized", detail,
                                 [(b"www-authenticate", b'Bearer realm="lifeline"')])
                return
        declared = headers.get("content-length")
        if declared is not None and declared.strip().isdigit() \
                and int(declared) > self.max_body:
            await self._too_large(send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                await self._too_large(send)
                return
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _too_large(self, send: Send) -> None:
        await send_error(send, 413, "body_too_large",
                         f"the request body is over {self.max_body} bytes",
                         [(b"connection", b"close")])


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the disconnect, as ASGI intends

    return replay


class AccessLog:
    """One line per request (method, path without the query, status, time) and a correlation id.

    The id comes from the caller's X-Correlation-ID when it is sane, else a new one; it is
    echoed in the response and carried into transitions and remediation records.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = Headers(scope=scope).get(CORRELATION_HEADER, "")
        correlation_id = offered if _CORRELATION_RE.match(offered) else uuid.uuid4().hex
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (CORRELATION_HEADER.encode(), correlation_id.encode())]
            await send(message)

        try:
            with correlation_scope(correlation_id):
                await self.app(scope, receive, send_with_id)
        finally:
            access_log.info("%s %s %d %.1fms %s", scope["method"], redact(scope["path"]), status,
                            (time.perf_counter() - started) * 1000, correlation_id)
