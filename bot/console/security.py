"""The console's protections: a signed, short-lived login-state cookie (OAuth `state` and the
PKCE verifier), the CSRF + Origin check of state-changing requests, and the headers of every
console page."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONSOLE_PREFIX = "/console"
SESSION_COOKIE = "lifeline_session"
LOGIN_COOKIE = "lifeline_login"
LOGIN_SECONDS = 600

# No inline script or style, nothing from elsewhere, never in a frame.
HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
     b"object-src 'none'"),
    (b"x-frame-options", b"DENY"),
    # same-origin, not no-referrer: a form POST then still carries its Origin.
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
]


class ConsoleHeaders:
    """Adds HEADERS to every answer under /console."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(
                CONSOLE_PREFIX):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in HEADERS if k not in names]
            await send(message)

        await self.app(scope, receive, with_headers)


class Signer:
    """HMAC-SHA256 signed values with an expiry (CONSOLE_SESSION_SECRET)."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"lifeline-console:" + secret.encode()).digest()

    def sign(self, value: dict[str, Any], seconds: float) -> str:
        body = base64.urlsafe_b64encode(json.dumps(
            {**value, "exp": int(time.time() + seconds)}).encode()).decode().rstrip("=")
        return f"{body}.{self._mac(body)}"

    def unsign(self, signed: str | None) -> dict[str, Any] | None:
        if not signed or len(signed) > 2000 or "." not in signed:
            return None
        body, mac = signed.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            value = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("exp"), int) \
                or value["exp"] < time.time():
            return None
        return value

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()


def same_origin(origin: str | None, base_url: str) -> bool:
    """The request's Origin is the console's own (scheme, host and port)."""
    if not origin or origin == "null":
        return False
    try:
        want, got = urlsplit(base_url), urlsplit(origin)
        return (got.scheme, got.hostname, got.port or _port(got.scheme)) == \
            (want.scheme, want.hostname, want.port or _port(want.scheme))
    except ValueError:  # a malformed Origin (a port out of range, a broken IPv6 address)
        return False


def _port(scheme: str) -> int:
    return 443 if scheme == "https" else 80
