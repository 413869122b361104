"""OAuth2 state of the sandbox: authorization codes, access and refresh tokens, their checks.

Matches Discord's authorization-code grant (RFC 6749 and RFC 7636 with S256): the client
id is the application id; the client secret and the redirect URIs registered for the
application come from :class:`~sandbox.config.SandboxConfig` (and the control API). A code
lives 10 minutes, is used once and is bound to its client, redirect URI, user, scopes and
PKCE challenge; using it again revokes every token issued from it (RFC 6749 §4.1.2). An
access token lives ``expires_in`` seconds (604800, a week, like Discord); a refresh token
lives until revoked, and refreshing replaces both tokens of the grant. All times read the
sandbox clock, so a test advances it instead of waiting.

No aiohttp here: :mod:`sandbox.oauth_routes` turns these calls into HTTP, and an
:class:`OAuthError` into the ``{"error", "error_description"}`` answer Discord gives.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from .config import SandboxConfig
from .errors import SandboxError
from .models import User
from .world import World

CODE_TTL = 600.0
# RFC 7636 §4.1: 43 to 128 unreserved characters.
VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
ACCESS_TTL = 604_800
# Discord's OAuth2 scopes a sandbox user can grant (not `bot`/`webhook.incoming`: those
# install an application, which the sandbox does with create_guild).
SCOPES = frozenset(
    {
        "identify", "email", "guilds", "guilds.members.read", "guilds.join", "connections",
        "openid", "role_connections.write", "applications.commands",
    }
)


class OAuthError(SandboxError):
    """A refusal of the token or revoke endpoint: RFC 6749 §5.2 error code and HTTP status."""

    def __init__(self, error: str, description: str | None = None, *, status: int = 400) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


class AuthorizeRefused(SandboxError):
    """An authorization request the sandbox will not redirect (bad client, redirect, scope)."""


@dataclass(frozen=True)
class AuthorizeRequest:
    """What ``GET /oauth2/authorize`` asks, checked by :meth:`OAuth.check_request`."""

    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None = None
    code_challenge: str | None = None


@dataclass
class Code:
    value: str
    request: AuthorizeRequest
    user_id: int
    issued: float
    used: bool = False

    @property
    def redirect_url(self) -> str:
        asked = self.request
        return with_query(asked.redirect_uri, {"code": self.value, "state": asked.state})


@dataclass
class Token:
    """One access token and its refresh token; ``revoked`` says why it stopped working."""

    access_token: str
    refresh_token: str
    user_id: int
    client_id: str
    scopes: tuple[str, ...]
    issued: float
    expires_at: float
    # The code the grant began with; refreshed tokens keep it, so a reused code revokes them.
    code: str
    revoked: str | None = None  # "revoke", "refresh" or "code_reuse"

    def live(self, now: float) -> bool:
        return self.revoked is None and now < self.expires_at

    def grant(self) -> dict[str, object]:
        """The token endpoint's answer."""
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": ACCESS_TTL,
            "refresh_token": self.refresh_token,
            "scope": " ".join(self.scopes),
        }


def s256(verifier: str) -> str:
    """PKCE S256: BASE64URL(SHA256(verifier)) without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def same(given: str, expected: str) -> bool:
    """Constant-time comparison that also takes non-ASCII input (a refusal, not a crash)."""
    return hmac.compare_digest(given.encode(), expected.encode())


def with_query(uri: str, params: dict[str, str | None]) -> str:
    """``uri`` plus ``params`` (None dropped), after whatever query it already has."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return uri + ("&" if urlsplit(uri).query else "?") + query


class OAuth:
    def __init__(
        self, config: SandboxConfig, world: World, application_id: Callable[[], int]
    ) -> None:
        self.config = config
        self.world = world
        # The application id is the bot user's id unless configured: read it when needed.
        self._application_id = application_id
        self.codes: dict[str, Code] = {}
        self.tokens: list[Token] = []

    @property
    def client_id(self) -> str:
        """Discord's OAuth2 client id is the application id."""
        return str(self._application_id())

    def _now(self) -> float:
        return self.config.clock.now()

    # -- the authorization request ----------------------------------------
    def check_request(
        self,
        *,
        response_type: str | None,
        client_id: str | None,
        redirect_uri: str | None,
        scope: str | None,
        state: str | None = None,
        code_challenge: str | None = None,
        code_challenge_method: str | None = None,
    ) -> AuthorizeRequest:
        """The request, or AuthorizeRefused saying why no redirect may happen."""
        if client_id != self.client_id:
            raise AuthorizeRefused(f"unknown client_id {client_id!r}")
        if not redirect_uri or redirect_uri not in self.config.oauth_redirect_uris:
            raise AuthorizeRefused(
                f"redirect_uri {redirect_uri!r} is not registered for this application"
            )
        if response_type != "code":
            raise AuthorizeRefused(f"unsupported response_type {response_type!r}")
        scopes = tuple(dict.fromkeys((scope or "").split()))
        if not scopes:
            raise AuthorizeRefused("scope is required")
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown:
            raise AuthorizeRefused(f"invalid scope {unknown[0]!r}")
        if (code_challenge or code_challenge_method) and (
            code_challenge_method != "S256" or not code_challenge
        ):
            # Discord supports S256 only; RFC 7636's default without a method would be plain.
            raise AuthorizeRefused("code_challenge_method must be S256 with a code_challenge")
        return AuthorizeRequest(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scopes=scopes,
            state=state or None,
            code_challenge=code_challenge or None,
        )

    def users(self) -> list[User]:
        """Who may log in on the authorize page: the world's non-bot users."""
        return sorted((u for u in self.world.users.values() if not u.bot), key=lambda u: u.id)

    def approve(self, request: AuthorizeRequest, user_id: int) -> Code:
        """The user consents: a new code, whose ``redirect_url`` the browser is sent to."""
        user = self.world.users.get(user_id)
        if user is None or user.bot:
            raise AuthorizeRefused(f"user {user_id} is not a user of the sandbox")
        code = Code(secrets.token_urlsafe(24), request, user_id, self._now())
        self.codes[code.value] = code
        return code

    def authorize(
        self,
        user_id: int,
        redirect_uri: str,
        scope: str = "identify",
        *,
        state: str | None = None,
        code_challenge: str | None = None,
        client_id: str | None = None,
    ) -> Code:
        """A user consents with no browser (tests, the control API): the same checks as the
        page, then a code; ``code.redirect_url`` is where the page would have sent them."""
        asked = self.check_request(
            response_type="code",
            client_id=client_id or self.client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            state=state,
            code_challenge=code_challenge,
            code_challenge_method="S256" if code_challenge else None,
        )
        return self.approve(asked, user_id)

    def deny(self, request: AuthorizeRequest) -> str:
        """The user pressed Cancel."""
        return with_query(
            request.redirect_uri,
            {
                "error": "access_denied",
                "error_description": "The resource owner or authorization server denied the "
                "request",
                "state": request.state,
            },
        )

    # -- the token endpoint --------------------------------------------------
    def authenticate(self, client_id: str | None, client_secret: str | None) -> str:
        if (
            client_id != self.client_id
            or client_secret is None
            or not same(client_secret, self.config.oauth_client_secret)
        ):
            raise OAuthError("invalid_client", status=401)
        return client_id

    def exchange_code(
        self, client_id: str, code: str | None, redirect_uri: str | None, verifier: str | None
    ) -> Token:
        if not code:
            raise OAuthError("invalid_request", 'Missing "code" in request.')
        if not redirect_uri:
            raise OAuthError("invalid_request", 'Missing "redirect_uri" in request.')
        found = self.codes.get(code)
        if found is None or found.request.client_id != client_id:
            raise OAuthError("invalid_grant", 'Invalid "code" in request.')
        if found.used:
            # RFC 6749 §4.1.2: a code used twice revokes what it gave, refreshed or not.
            for token in (t for t in self.tokens if t.code == found.value):
                token.revoked = token.revoked or "code_reuse"
            raise OAuthError("invalid_grant", 'Invalid "code" in request.')
        found.used = True
        if self._now() - found.issued > CODE_TTL:
            raise OAuthError("invalid_grant", 'Invalid "code" in request.')
        if redirect_uri != found.request.redirect_uri:
            raise OAuthError("invalid_grant", 'Invalid "redirect_uri" in request.')
        challenge = found.request.code_challenge
        if challenge is not None and (
            not verifier or not VERIFIER.fullmatch(verifier) or not same(s256(verifier), challenge)
        ):
            raise OAuthError("invalid_grant", 'Invalid "code_verifier" in request.')
        return self._issue(found.user_id, client_id, found.request.scopes, found.value)

    def refresh(self, client_id: str, refresh_token: str | None, scope: str | None) -> Token:
        if not refresh_token:
            raise OAuthError("invalid_request", 'Missing "refresh_token" in request.')
        old = next((t for t in self.tokens if same(refresh_token, t.refresh_token)), None)
        if old is None or old.revoked is not None or old.client_id != client_id:
            raise OAuthError("invalid_grant", 'Invalid "refresh_token" in request.')
        scopes = old.scopes
        if scope:
            wanted = tuple(dict.fromkeys(scope.split()))
            if any(s not in old.scopes for s in wanted):
                raise OAuthError("invalid_scope", "The requested scope is invalid.")
            scopes = wanted
        old.revoked = "refresh"
        return self._issue(old.user_id, client_id, scopes, old.code)

    def _issue(
        self, user_id: int, client_id: str, scopes: tuple[str, ...], code: str
    ) -> Token:
        now = self._now()
        token = Token(
            access_token=secrets.token_urlsafe(24),
            refresh_token=secrets.token_urlsafe(24),
            user_id=user_id,
            client_id=client_id,
            scopes=scopes,
            issued=now,
            expires_at=now + ACCESS_TTL,
            code=code,
        )
        self.tokens.append(token)
        return token

    def revoke(self, client_id: str, value: str) -> None:
        """Revoke the grant an access or refresh token belongs to; unknown tokens are fine."""
        for token in self.tokens:
            if token.client_id == client_id and value in (token.access_token, token.refresh_token):
                token.revoked = token.revoked or "revoke"

    # -- using a token -------------------------------------------------------
    def bearer(self, authorization: str | None) -> Token | None:
        """The live token of an ``Authorization: Bearer <token>`` header, else None."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        value = authorization.removeprefix("Bearer ").strip()
        now = self._now()
        for token in self.tokens:
            if same(value, token.access_token):
                return token if token.live(now) else None
        return None

    # -- read back -------------------------------------------------------
    def live_tokens(self) -> list[Token]:
        now = self._now()
        return [t for t in self.tokens if t.live(now)]

    def revoked_tokens(self) -> list[Token]:
        return [t for t in self.tokens if t.revoked is not None]

    def describe(self, token: Token) -> dict[str, object]:
        now = self._now()
        status = "live" if token.live(now) else ("revoked" if token.revoked else "expired")
        return {
            "access_token": token.access_token,
            "refresh_token": token.refresh_token,
            "user_id": str(token.user_id),
            "client_id": token.client_id,
            "scope": " ".join(token.scopes),
            "status": status,
            "revoked": token.revoked,
        }
