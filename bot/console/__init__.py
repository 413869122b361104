"""The staff web console (issue 15), on the HTTP API's FastAPI app: `mount_console`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from bot.console.oauth import DiscordOAuth
from bot.console.pages_audit import router as audit_router
from bot.console.pages_bulk import router as bulk_router
from bot.console.pages_dead_letters import router as dead_letters_router
from bot.console.pages_deliveries import router as deliveries_router
from bot.console.pages_members import router as members_router
from bot.console.pages_overview import router as overview_router
from bot.console.pages_selection import router as selection_router
from bot.console.routes import ConsoleContext, router
from bot.console.security import ConsoleHeaders, Signer
from bot.console.staff import StaffDirectory
from bot.container import Container
from domain.console_sessions import ConsoleSessions

# In this order: bulk and selection before the entry route ("retry-all" and "selected" are
# not entry ids).
ROUTERS = (router, bulk_router, selection_router, dead_letters_router, deliveries_router,
           audit_router, members_router, overview_router)


def mount_console(app: FastAPI, container: Container, staff: StaffDirectory) -> None:
    """Serve /console on `app`, if its settings are set (else nothing: see
    `Settings.console_off_reason`)."""
    settings = container.settings
    if settings.console_off_reason() is not None:
        return
    assert settings.discord_client_secret is not None
    assert settings.console_session_secret is not None
    client_id = settings.oauth_client_id
    assert client_id is not None
    base = settings.console_base_url
    app.state.console = ConsoleContext(
        container=container, sessions=ConsoleSessions(container.services.stores
                                                      .console_sessions),
        oauth=DiscordOAuth(client_id=client_id,
                           client_secret=settings.discord_client_secret.get_secret_value(),
                           authorize_url=settings.discord_oauth_url,
                           redirect_uri=f"{base}/console/callback",
                           api_base=settings.discord_api_base),
        signer=Signer(settings.console_session_secret.get_secret_value()),
        staff=staff, base_url=base)
    for console_router in ROUTERS:
        app.include_router(console_router)
    app.mount("/console/static", StaticFiles(directory=Path(__file__).parent / "static"),
              name="console-static")
    app.add_middleware(ConsoleHeaders)
