"""The console on the real app, over a real bot (discord.py against the sandbox)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from pydantic import SecretStr

from bot.api.app import create_app
from bot.console.security import SESSION_COOKIE
from bot.console.staff import GatewayStaff
from bot.container import Container
from domain.console_sessions import ConsoleSessions
from tests.api.support import TOKEN
from tests.bot.world import World

BASE = "http://console.test"
CALLBACK = BASE + "/console/callback"
SESSION_SECRET = "s" * 40
CLIENT_SECRET = "sandbox-client-secret"


def console_container(world: World, **extra: object) -> Container:
    settings = world.container.settings.model_copy(update={
        "api_token": SecretStr(TOKEN), "discord_client_secret": SecretStr(CLIENT_SECRET),
        "console_session_secret": SecretStr(SESSION_SECRET),
        "discord_client_id": str(world.sandbox.application_id), "console_url": BASE,
        "discord_oauth_url": world.sandbox.base_url + "/oauth2/authorize",
        "discord_api_base": world.sandbox.api_url, **extra})
    return Container(settings, world.container.db, world.container.services)


@asynccontextmanager
async def console_client(world: World, **extra: object) -> AsyncIterator[httpx.AsyncClient]:
    container = console_container(world, **extra)
    if CALLBACK not in world.sandbox.config.oauth_redirect_uris:
        world.sandbox.config.oauth_redirect_uris.append(CALLBACK)
    app = create_app(container, console_staff=GatewayStaff(world.bot, container.guilds))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        yield http


async def staff_login(world: World, http: httpx.AsyncClient) -> str:
    """Log the staff member in (the session a login through Discord leaves): its CSRF
    token."""
    new = await ConsoleSessions(world.container.services.stores.console_sessions).login(
        world.staff, "staffer")
    http.cookies.set(SESSION_COOKIE, new.cookie_value)
    return new.csrf_token
