"""HTTP of the sandbox's OAuth2: the consent page, the token endpoints, the user's own routes.

    GET  /oauth2/authorize            the consent page (also under /api/v10): pick a user
    POST /oauth2/authorize            its form: 302 to redirect_uri with code and state,
                                      or error=access_denied on Cancel
    POST /api/v10/oauth2/token        grant_type=authorization_code | refresh_token
    POST /api/v10/oauth2/token/revoke token (+ token_type_hint): 200 {} even when unknown
    GET  /api/v10/users/@me           the bot (Bot token) or the token's user (identify)
    GET  /api/v10/users/@me/guilds    the bot's guilds, or the user's (scope guilds)
    GET  /api/v10/users/@me/guilds/{guild_id}/member   the user's member object there
                                      (Bearer only, scope guilds.members.read)

The token endpoints take ``application/x-www-form-urlencoded`` bodies and authenticate
the client by HTTP Basic or by ``client_id``/``client_secret`` in the body, answering
RFC 6749's ``{"error", "error_description"}``; the user routes answer Discord's REST
errors (``{"message": "401: Unauthorized", "code": 0}``). A request the authorize page
refuses (unknown client, unregistered redirect URI, bad response type or scope) gets a
400 page and no redirect. Plus the control API's ``/_sandbox/oauth/...`` for tests.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web

from . import errors, payloads
from .control import json_action
from .models import Guild
from .oauth import AuthorizeRefused, AuthorizeRequest, OAuthError
from .oauth_pages import consent_page, refusal_page
from .server import API_PREFIX, Server, bearer_of, body_of, json_response

if TYPE_CHECKING:
    from .scenario import Sandbox

JSON = dict[str, Any]
AUTHORIZE_PATHS = ("/oauth2/authorize", API_PREFIX + "/oauth2/authorize")
_REQUEST_FIELDS = (
    "response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge",
    "code_challenge_method",
)


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


def _oauth_error(exc: OAuthError) -> web.Response:
    # RFC 6749 §5.2: a 401 names the authentication scheme the client should use.
    headers = {"WWW-Authenticate": 'Basic realm="oauth2"'} if exc.status == 401 else None
    return json_response(exc.body(), status=exc.status, headers=headers)


def _unauthorized() -> errors.Unauthorized:
    return errors.Unauthorized(0, "401: Unauthorized")


def _partial_guild(guild: Guild, user_id: int) -> JSON:
    """A guild of ``GET /users/@me/guilds``, with the user's permissions as a string."""
    return {
        "id": str(guild.id),
        "name": guild.name,
        "icon": None,
        "banner": None,
        "owner": guild.owner_id == user_id,
        "permissions": str(guild.base_permissions(user_id)),
        "features": [],
    }


class OAuthRoutes:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.core = sandbox.core
        self.oauth = sandbox.core.oauth

    def register(self, server: Server) -> None:
        for path in AUTHORIZE_PATHS:
            server.app.router.add_get(path, self.authorize_page)
            server.app.router.add_post(path, self.authorize_answer)
        server.add_api_route("POST", "/oauth2/token", self.token)
        server.add_api_route("POST", "/oauth2/token/revoke", self.revoke)
        server.add_api_route("GET", "/users/@me", self.me)
        server.add_api_route("GET", "/users/@me/guilds", self.my_guilds)
        server.add_api_route("GET", "/users/@me/guilds/{guild_id}/member", self.my_member)
        router = server.app.router
        router.add_post("/_sandbox/oauth/authorize", json_action(self.control_authorize))
        router.add_post("/_sandbox/oauth/app", json_action(self.control_app))
        router.add_get("/_sandbox/oauth/tokens", self.control_tokens)

    # -- the consent page --------------------------------------------------
    def _request(self, fields: Any) -> AuthorizeRequest:
        return self.oauth.check_request(**{name: fields.get(name) for name in _REQUEST_FIELDS})

    async def authorize_page(self, request: web.Request) -> web.Response:
        try:
            asked = self._request(request.query)
        except AuthorizeRefused as exc:
            return _html(refusal_page(str(exc)), status=400)
        page = consent_page(
            asked, app_name=self.core.bot.username, users=self.oauth.users(), action=request.path
        )
        return _html(page)

    async def authorize_answer(self, request: web.Request) -> web.Response:
        form = body_of(request).form or {}
        try:
            asked = self._request(form)
            if form.get("action") == "cancel":
                return _redirect(self.oauth.deny(asked))
            if form.get("action") != "authorize":
                raise AuthorizeRefused("choose Authorize or Cancel")
            user_id = form.get("user_id", "")
            if not user_id.isascii() or not user_id.isdigit():
                raise AuthorizeRefused("choose a user to log in as")
            return _redirect(self.oauth.approve(asked, int(user_id)).redirect_url)
        except AuthorizeRefused as exc:
            return _html(refusal_page(str(exc)), status=400)

    # -- the token endpoints -----------------------------------------------
    def _client(self, request: web.Request, form: dict[str, str]) -> str:
        """The authenticated client id: HTTP Basic, else client_id/client_secret in the body."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                decoded = base64.b64decode(header.removeprefix("Basic "), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise OAuthError("invalid_client", status=401) from None
            client_id, _, secret = decoded.partition(":")
            return self.oauth.authenticate(unquote(client_id), unquote(secret))
        return self.oauth.authenticate(form.get("client_id"), form.get("client_secret"))

    def _form(self, request: web.Request) -> dict[str, str]:
        form = body_of(request).form
        if form is None:
            raise OAuthError(
                "invalid_request", "The body must be application/x-www-form-urlencoded."
            )
        return form

    async def token(self, request: web.Request) -> web.Response:
        try:
            form = self._form(request)
            client_id = self._client(request, form)
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                issued = self.oauth.exchange_code(
                    client_id, form.get("code"), form.get("redirect_uri"),
                    form.get("code_verifier"),
                )
            elif grant_type == "refresh_token":
                issued = self.oauth.refresh(
                    client_id, form.get("refresh_token"), form.get("scope")
                )
            elif not grant_type:
                raise OAuthError("invalid_request", 'Missing "grant_type" in request.')
            else:
                raise OAuthError("unsupported_grant_type")
        except OAuthError as exc:
            return _oauth_error(exc)
        finally:
            self.core.notifier.notify()
        return json_response(issued.grant(), headers={"Cache-Control": "no-store"})

    async def revoke(self, request: web.Request) -> web.Response:
        try:
            form = self._form(request)
            client_id = self._client(request, form)
            token = form.get("token")
            if not token:
                raise OAuthError("invalid_request", 'Missing "token" in request.')
        except OAuthError as exc:
            return _oauth_error(exc)
        self.oauth.revoke(client_id, token)
        self.core.notifier.notify()
        return json_response({})

    # -- a user's own routes -------------------------------------------------
    async def me(self, request: web.Request) -> web.Response:
        token = bearer_of(request)
        if token is None:
            return json_response(payloads.current_user(self.core.bot))
        if "identify" not in token.scopes:
            raise _unauthorized()
        body = payloads.current_user(self.core.world.user(token.user_id))
        if "email" in token.scopes:
            body["email"] = f"user{token.user_id}@sandbox.invalid"
        else:
            body.pop("email", None)
            body.pop("verified", None)
        return json_response(body)

    async def my_guilds(self, request: web.Request) -> web.Response:
        token = bearer_of(request)
        if token is not None and "guilds" not in token.scopes:
            raise errors.missing_access()
        user_id = self.core.bot.id if token is None else token.user_id
        guilds = sorted(
            (g for g in self.core.world.guilds.values() if user_id in g.members),
            key=lambda g: g.id,
        )
        query = request.query
        try:
            before = int(query.get("before", 0))
            after = int(query.get("after", 0))
            limit = int(query.get("limit", 200))
        except ValueError:
            raise errors.invalid_form("limit", "NUMBER_TYPE_COERCE", "Not a number.") from None
        if not 1 <= limit <= 200:
            raise errors.invalid_form(
                "limit", "NUMBER_TYPE_MAX", "int value should be between 1 and 200."
            )
        chosen = [g for g in guilds if g.id > after and (not before or g.id < before)]
        return json_response([_partial_guild(g, user_id) for g in chosen[:limit]])

    async def my_member(self, request: web.Request) -> web.Response:
        token = bearer_of(request)
        if token is None:
            raise _unauthorized()
        if "guilds.members.read" not in token.scopes:
            raise errors.missing_access()
        try:
            guild = self.core.world.guilds.get(int(request.match_info["guild_id"]))
        except ValueError:
            guild = None
        if guild is None or token.user_id not in guild.members:
            raise errors.unknown("Guild", errors.UNKNOWN_GUILD)
        return json_response(payloads.member(guild.members[token.user_id]))

    # -- the control API ---------------------------------------------------
    async def control_authorize(self, data: JSON) -> JSON:
        """A user consents with no browser: the redirect the page would have sent."""
        def text(key: str) -> str | None:
            value = data.get(key)
            if value is not None and not isinstance(value, str | int):
                raise AuthorizeRefused(f"{key!r} must be a string")
            return None if value is None else str(value)

        try:
            user_id = int(data["user_id"])
        except (KeyError, TypeError, ValueError):
            raise AuthorizeRefused("'user_id' must be a snowflake") from None
        code = self.oauth.authorize(
            user_id,
            text("redirect_uri") or "",
            text("scope") or "",
            state=text("state"),
            code_challenge=text("code_challenge"),
            client_id=text("client_id"),
        )
        return {"redirect_url": code.redirect_url, "code": code.value, "state": code.request.state}

    async def control_app(self, data: JSON) -> JSON:
        config = self.sandbox.config
        if data.get("client_secret") is not None:
            secret = data["client_secret"]
            if not isinstance(secret, str) or not secret:
                raise AuthorizeRefused("'client_secret' must be a non-empty string")
            config.oauth_client_secret = secret
        if data.get("redirect_uris") is not None:
            uris = data["redirect_uris"]
            if not isinstance(uris, list) or not all(isinstance(u, str) and u for u in uris):
                raise AuthorizeRefused("'redirect_uris' must be a list of URLs")
            config.oauth_redirect_uris = list(uris)
        return {
            "client_id": self.oauth.client_id,
            "client_secret": config.oauth_client_secret,
            "redirect_uris": list(config.oauth_redirect_uris),
        }

    async def control_tokens(self, request: web.Request) -> web.Response:
        return json_response([self.oauth.describe(t) for t in self.oauth.tokens])
