"""Login with Discord: the OAuth2 authorization-code flow with PKCE, scope `identify`.

The user's token serves only to learn who they are (`GET /users/@me`): it is revoked right
after, whatever happened, and never stored or logged.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp

log = logging.getLogger(__name__)

DISCORD_API = "https://discord.com/api/v10"
TIMEOUT = aiohttp.ClientTimeout(total=10)


class OAuthError(Exception):
    """The login did not happen; the message is safe to show (no token, no code)."""


@dataclass(frozen=True)
class DiscordIdentity:
    user_id: int
    username: str


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class DiscordOAuth:
    def __init__(self, *, client_id: str, client_secret: str, authorize_url: str,
                 redirect_uri: str, api_base: str | None = None) -> None:
        self.client_id = client_id
        self._secret = client_secret
        self.authorize_base = authorize_url
        self.redirect_uri = redirect_uri
        self.api_base = (api_base or DISCORD_API).rstrip("/")

    def authorize_url(self, state: str, code_challenge: str) -> str:
        return self.authorize_base + "?" + urlencode({
            "response_type": "code", "client_id": self.client_id, "scope": "identify",
            "redirect_uri": self.redirect_uri, "state": state, "prompt": "none",
            "code_challenge": code_challenge, "code_challenge_method": "S256"})

    async def identify(self, code: str, code_verifier: str) -> DiscordIdentity:
        """Who logged in: the code exchanged, the user read, the token revoked."""
        try:
            return await self._identify(code, code_verifier)
        except (aiohttp.ClientError, TimeoutError, KeyError, ValueError) as exc:
            raise OAuthError(f"Discord could not be asked who you are "
                             f"({type(exc).__name__}); try again") from None

    async def _identify(self, code: str, code_verifier: str) -> DiscordIdentity:
        client = {"client_id": self.client_id, "client_secret": self._secret}
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            async with http.post(f"{self.api_base}/oauth2/token", data={
                    **client, "grant_type": "authorization_code", "code": code,
                    "redirect_uri": self.redirect_uri, "code_verifier": code_verifier}) as r:
                if r.status != 200:
                    body = await r.json(content_type=None)
                    error = body.get("error") if isinstance(body, dict) else None
                    raise OAuthError(f"Discord refused the login ({error or r.status})")
                token = (await r.json())["access_token"]
            try:
                async with http.get(f"{self.api_base}/users/@me",
                                    headers={"Authorization": f"Bearer {token}"}) as r:
                    if r.status != 200:
                        raise OAuthError(f"Discord did not say who you are ({r.status})")
                    me = await r.json()
                return DiscordIdentity(int(me["id"]), str(me.get("global_name")
                                                          or me.get("username") or me["id"]))
            finally:
                await self._revoke(http, client, token)

    async def _revoke(self, http: aiohttp.ClientSession, client: dict[str, str],
                      token: str) -> None:
        try:
            async with http.post(f"{self.api_base}/oauth2/token/revoke", data={
                    **client, "token": token, "token_type_hint": "access_token"}) as r:
                if r.status != 200:
                    log.warning("console login: Discord did not revoke the token (%d)",
                                r.status)
        except (aiohttp.ClientError, TimeoutError):
            log.warning("console login: could not revoke the token (Discord unreachable)")
