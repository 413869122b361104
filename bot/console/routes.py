"""/console: the staff web console's pages (issue 15; this first part: login with Discord,
logout, the servers you are staff of). Server-rendered (Jinja2), no script."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from bot.console.oauth import DiscordOAuth, OAuthError, pkce_pair
from bot.console.security import (
    HEADERS,
    LOGIN_COOKIE,
    LOGIN_SECONDS,
    SESSION_COOKIE,
    Signer,
    same_origin,
)
from bot.console.staff import StaffDirectory
from bot.container import Container
from domain.console_sessions import ConsoleSessions, ConsoleUser

log = logging.getLogger(__name__)
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
router = APIRouter(prefix="/console", include_in_schema=False)


@dataclass(frozen=True)
class ConsoleContext:
    container: Container
    sessions: ConsoleSessions
    oauth: DiscordOAuth
    signer: Signer
    staff: StaffDirectory
    base_url: str

    @property
    def secure(self) -> bool:
        return self.base_url.startswith("https://")


def console_of(request: Request) -> ConsoleContext:
    console: ConsoleContext = request.app.state.console
    return console


def render(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, name, values, status_code=status)


def error_page(request: Request, status: int, title: str, detail: str,
           user: ConsoleUser | None = None) -> HTMLResponse:
    return render(request, "error.html", status, title=title, detail=detail, user=user)


def has_nul(request: Request) -> bool:
    """A query parameter holding NUL (PostgreSQL refuses it in text): bad input."""
    return any("\x00" in v for v in request.query_params.values())


def error_page_with_headers(request: Request, status: int, title: str,
                            detail: str) -> HTMLResponse:
    """An error page for the app's error handlers (which may answer from outside the
    console's header middleware): the console's headers set here."""
    response = error_page(request, status, title, detail)
    for name, value in HEADERS:
        response.headers[name.decode()] = value.decode()
    return response


async def current_user(request: Request) -> ConsoleUser | None:
    return await console_of(request).sessions.current(request.cookies.get(SESSION_COOKIE))


@router.get("", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    user = await current_user(request)
    if user is None:
        problem = LOGIN_PROBLEMS.get(request.query_params.get("login") or "")
        return render(request, "login.html", 400 if problem else 200, user=None,
                      problem=problem)
    console = console_of(request)
    rows = []
    for guild in await console.staff.staff_guilds(user.user_id):
        stats = await console.container.remediation.stats(guild.guild_id, top=1)
        failed = (await console.container.deliveries.summary(guild.guild_id)).failed
        oldest = stats.oldest_open_age_seconds
        rows.append({"guild_id": guild.guild_id, "name": guild.name,
                     "open": stats.by_status.get("open", 0),
                     "failed": failed,
                     "oldest": _age(oldest) if oldest is not None else "none"})
    return render(request, "guilds.html", user=user, rows=rows)


@router.get("/login")
async def login(request: Request) -> Response:
    console = console_of(request)
    state = secrets.token_urlsafe(24)
    verifier, challenge = pkce_pair()
    response = RedirectResponse(console.oauth.authorize_url(state, challenge), status_code=302)
    response.set_cookie(LOGIN_COOKIE, console.signer.sign(
        {"state": state, "verifier": verifier}, LOGIN_SECONDS), max_age=LOGIN_SECONDS,
        path="/console/callback", httponly=True, samesite="lax", secure=console.secure)
    return response


@router.get("/callback")
async def callback(request: Request) -> Response:
    """Discord's redirect. The `code` is used once and never logged; the answer redirects
    away at once, so it does not stay in the address bar."""
    console = console_of(request)
    params = request.query_params
    started = console.signer.unsign(request.cookies.get(LOGIN_COOKIE))
    state = params.get("state")
    if started is None or not state or not secrets.compare_digest(
            str(started.get("state")).encode(), state.encode("utf-8", "surrogateescape")):
        log.info("console login refused: missing or wrong state")
        return _login_failed("expired")
    if params.get("error") or not params.get("code"):
        log.info("console login: declined at Discord")
        return _login_failed("cancelled")
    try:
        who = await console.oauth.identify(params["code"], str(started["verifier"]))
    except OAuthError as exc:
        log.info("console login refused: %s", exc)
        return _login_failed("failed")
    new = await console.sessions.login(who.user_id, who.username)
    log.info("console login: user %s", who.user_id)
    response = RedirectResponse("/console", status_code=303)
    response.delete_cookie(LOGIN_COOKIE, path="/console/callback")
    response.set_cookie(SESSION_COOKIE, new.cookie_value,
                        max_age=int(console.sessions.ttl_seconds), path="/console",
                        httponly=True, samesite="lax", secure=console.secure)
    return response


# Why a login did not happen, as the login page says it: fixed words chosen by a code in the
# redirect (never text from the URL).
LOGIN_PROBLEMS = {
    "expired": "That login was not the one this browser started, or it is more than 10 "
               "minutes old. Log in again.",
    "cancelled": "Discord did not log you in (the login was cancelled).",
    "failed": "Discord could not confirm who you are right now; try again in a moment.",
}


def _login_failed(reason: str) -> Response:
    """Away from the callback URL at once (its code must not stay in the address bar), to
    the login page saying why; nothing else of the login is kept."""
    response = RedirectResponse(f"/console?login={reason}", status_code=303)
    response.delete_cookie(LOGIN_COOKIE, path="/console/callback")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    user = await current_user(request)
    refused = await refuse_unsafe(request, user)
    if refused is not None:
        return refused
    await console_of(request).sessions.logout(request.cookies.get(SESSION_COOKIE))
    assert user is not None
    log.info("console logout: user %s", user.user_id)
    response = RedirectResponse("/console", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


async def refuse_unsafe(request: Request, user: ConsoleUser | None) -> Response | None:
    """A state-changing request needs a session, its CSRF token and the console's Origin."""
    if user is None:
        return error_page(request, 401, "Not logged in", "Log in first.")
    form = await request.form()
    if any(isinstance(v, str) and "\x00" in v for v in form.values()):
        return error_page(request, 400, "Refused", "A field holds a character no text "
                          "may hold (NUL).", user)
    token = form.get("csrf")
    if not same_origin(request.headers.get("origin"), console_of(request).base_url) \
            or not user.csrf_ok(token if isinstance(token, str) else None):
        log.info("console: refused a %s %s of user %s (CSRF token or Origin)",
                 request.method, request.url.path, user.user_id)
        return error_page(request, 403, "Refused", "This form is stale or came from another "
                      "site. Reload the page and try again.", user)
    return None


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
