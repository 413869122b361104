"""The composition root: builds settings-driven parts once and closes them in reverse order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.embedded_pg import EmbeddedPostgres, start_embedded
from bot.settings import Settings
from bot.wiring import build_services
from domain.audit import AuditReads
from domain.deliveries import DeliveryService
from domain.guilds import GuildSettingsService
from domain.ingest.pipeline import Ingestion
from domain.metrics import Metrics
from domain.persistence.database import Database, url_password
from domain.persistence.migrate import upgrade
from domain.redaction import register_secret
from domain.remediation import RemediationService
from domain.services import Services
from domain.transitions import TransitionService

log = logging.getLogger(__name__)


@dataclass
class Container:
    """What a process runs on: its settings, its database, the services over it, and the
    embedded PostgreSQL it started (if any)."""

    settings: Settings
    db: Database
    services: Services
    embedded: EmbeddedPostgres | None = None
    # The gateway ingest pipeline, when this process runs the bot (set by the bot once its
    # cogs are loaded): /healthz, /metrics and `/lifeline status` report its lag.
    ingestion: Ingestion | None = None

    def ingest_directory(self, shard_ids: list[int] | None) -> Path:
        """The ingest log of this process: one per set of shards, since two processes must
        never share one (the log refuses to open twice)."""
        name = "all" if not shard_ids else "shards-" + "-".join(map(str, sorted(shard_ids)))
        return self.settings.data_dir / "ingest" / name

    # The services, by name, for the entrypoints and the API.
    @property
    def metrics(self) -> Metrics:
        return self.services.metrics

    @property
    def transitions(self) -> TransitionService:
        return self.services.transitions

    @property
    def remediation(self) -> RemediationService:
        return self.services.remediation

    @property
    def guilds(self) -> GuildSettingsService:
        return self.services.guilds

    @property
    def deliveries(self) -> DeliveryService:
        return self.services.deliveries

    @property
    def audit(self) -> AuditReads:
        return self.services.audit


def register_settings_secrets(settings: Settings) -> None:
    for secret in (settings.discord_token, settings.api_token, settings.database_url,
                   settings.discord_client_secret, settings.console_session_secret):
        if secret is not None:
            register_secret(secret.get_secret_value())
    if settings.database_url is not None:
        register_secret(url_password(settings.database_url.get_secret_value()))


async def database_url(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    if settings.database_url is not None:
        return settings.database_url.get_secret_value(), None
    embedded = await asyncio.to_thread(start_embedded, settings.data_dir / "pg")
    return embedded.url, embedded


@asynccontextmanager
async def open_container(settings: Settings, *, migrate: bool = True,
                         application_name: str = "lifeline") -> AsyncIterator[Container]:
    register_settings_secrets(settings)
    url, embedded = await database_url(settings)
    try:
        if migrate:
            await upgrade(url, statement_cache_size=settings.db_statement_cache_size)
        db = Database(url, pool_size=settings.db_pool_size,
                      max_overflow=settings.db_max_overflow,
                      statement_cache_size=settings.db_statement_cache_size,
                      application_name=application_name)
        # What staff wait on gets connections of its own: a backlog of gateway writes on
        # the main pool never makes a slash command wait for one.
        interactive = Database(url, pool_size=settings.db_interactive_pool_size,
                               max_overflow=0,
                               statement_cache_size=settings.db_statement_cache_size,
                               application_name=f"{application_name}-staff") \
            if settings.db_interactive_pool_size > 0 else None
        try:
            yield Container(settings, db, build_services(settings, db, interactive=interactive),
                            embedded)
        finally:
            await db.dispose()
            if interactive is not None:
                await interactive.dispose()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
