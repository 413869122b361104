"""Builds the FastAPI application from a Container. No globals: everything hangs off the app."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Security
from pydantic import SecretStr

from bot.api import (
    routes_audit,
    routes_dead_letters,
    routes_deliveries,
    routes_members,
    routes_ops,
    routes_overview,
)
from bot.api.deps import ApiContext, bearer_scheme, reject_unknown_query
from bot.api.docs import install_docs
from bot.api.errors import install_error_handlers, responses
from bot.api.guard import AccessLog, RequestGuard
from bot.console import mount_console
from bot.console.staff import StaffDirectory
from bot.container import Container
from bot.prometheus import PrometheusMetrics
from domain.commands import MAX_SNOWFLAKE

API_PREFIX = "/api/v1"
OPENAPI_URL = f"{API_PREFIX}/openapi.json"
DOCS_URL = f"{API_PREFIX}/docs"
DOCS_ASSETS_URL = f"{API_PREFIX}/docs/assets"

DESCRIPTION = """
The second writer of Lifeline, used by the web app. Every route under `/api/v1` needs
`Authorization: Bearer <API_TOKEN>`; a token in the query string is refused. Request bodies
over 64 KiB are refused with 413. Discord ids are sent as strings of digits (accepted as
strings or integers). Every error answer is `{"error": <code>, "detail": <words>}`, plus the
fields that help to act on it.
"""


def create_app(container: Container, *,
               gateway_status: Callable[[], bool] | None = None,
               console_staff: StaffDirectory | None = None) -> FastAPI:
    """The API over `container`'s services; `gateway_status` answers "is the bot connected"
    when the bot runs in the same process (reported by /healthz). With `console_staff` (who
    is staff where, from the bot in this process) and the console's settings, the staff web
    console is served at /console too."""
    settings = container.settings
    console_only = settings.api_token is None and console_staff is not None \
        and settings.console_off_reason() is None
    if settings.api_token is None and not console_only:
        raise ValueError("API_TOKEN is not set: the HTTP API does not run without it")
    # Without API_TOKEN (the console alone), /api/v1 stays off: its guard asks for a token
    # nobody has, and it has no routes.
    token = settings.api_token or SecretStr(secrets.token_urlsafe(32))
    app = FastAPI(title="Lifeline API", version="1", description=DESCRIPTION,
                  openapi_url=OPENAPI_URL, docs_url=None, redoc_url=None,
                  swagger_ui_oauth2_redirect_url=None)
    app.state.lifeline = ApiContext(container, gateway_status)
    metrics = container.metrics
    # Counters come from the container's exporter; a container built with plain counters
    # (tests) still gets the database gauges.
    app.state.prometheus = metrics if isinstance(metrics, PrometheusMetrics) \
        else PrometheusMetrics()

    api = APIRouter(prefix=API_PREFIX,
                    dependencies=[Security(bearer_scheme), Depends(reject_unknown_query)],
                    responses=responses(401, 413, 422, 503))
    if not console_only:
        api.include_router(routes_members.router)
        api.include_router(routes_dead_letters.router)
        api.include_router(routes_deliveries.router)
        api.include_router(routes_audit.router)
        api.include_router(routes_overview.router)
        app.include_router(api)
    app.include_router(routes_ops.router)
    if not console_only:
        install_docs(app, docs_url=DOCS_URL, assets_url=DOCS_ASSETS_URL,
                     openapi_url=OPENAPI_URL)
    if console_staff is not None:
        mount_console(app, container, console_staff)

    install_error_handlers(app)
    app.add_middleware(RequestGuard, token=token.get_secret_value())
    app.add_middleware(AccessLog)  # added last = outermost: it sees the guard's refusals
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _exact_bounds(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _exact_bounds(node: Any) -> Any:
    """FastAPI's OpenAPI model keeps numeric bounds as floats: 2**63-1 would read 2**63."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("minimum", "maximum") and isinstance(value, float) \
                    and value.is_integer():
                node[key] = min(int(value), MAX_SNOWFLAKE)
            else:
                _exact_bounds(value)
    elif isinstance(node, list):
        for item in node:
            _exact_bounds(item)
    return node
