"""The client's side of the sandbox's OAuth2 that its tests play: the registered callback, a
PKCE verifier and its challenge, the consent page's query, and calls to the token endpoint
and to the API with a token (the fixtures `http` and `app` are in conftest.py)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import aiohttp

from sandbox import Sandbox

CALLBACK = "http://127.0.0.1:9999/console/auth/callback"
VERIFIER = "a-pkce-verifier-that-is-long-enough-for-rfc-7636-0123456789"
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=")


def basic(app: dict[str, Any], secret: str | None = None) -> dict[str, str]:
    raw = f"{app['client_id']}:{secret or app['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def page_query(app: dict[str, Any], **overrides: str) -> dict[str, str]:
    query = {
        "response_type": "code",
        "client_id": app["client_id"],
        "scope": "identify guilds",
        "redirect_uri": CALLBACK,
        "state": "st-123",
        "code_challenge": CHALLENGE.decode(),
        "code_challenge_method": "S256",
        "prompt": "consent",
    }
    return query | overrides


async def token(
    sandbox: Sandbox, http: aiohttp.ClientSession, form: dict[str, str], headers: Any = None
) -> tuple[int, dict[str, Any]]:
    async with http.post(sandbox.api_url + "/oauth2/token", data=form, headers=headers) as resp:
        return resp.status, await resp.json()


async def login(
    sandbox: Sandbox, http: aiohttp.ClientSession, app: dict[str, Any], user_id: int,
    scope: str = "identify",
) -> dict[str, Any]:
    code = sandbox.oauth.authorize(user_id, CALLBACK, scope).value
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    status, body = await token(sandbox, http, form, basic(app))
    assert status == 200, body
    return body


async def get(sandbox: Sandbox, http: aiohttp.ClientSession, path: str, auth: str) -> Any:
    async with http.get(sandbox.api_url + path, headers={"Authorization": auth}) as resp:
        return resp.status, await resp.json()
