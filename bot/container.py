"""The composition root: builds settings-driven parts once and closes them in reverse order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bot.embedded_pg import EmbeddedPostgres, start_embedded
from bot.migrate import upgrade
from bot.prometheus import PrometheusMetrics
from bot.settings import Settings
from domain.deadletters import DeadLetterRecorder
from domain.guilds import GuildSettingsService
from domain.metrics import Metrics
from domain.persistence.database import Database
from domain.redaction import register_secret
from domain.remediation import RemediationService
from domain.transitions import RetryPolicy, TransitionService

log = logging.getLogger(__name__)


@dataclass
class Container:
    """The typed set of services handed to cogs, the HTTP API and the CLI."""

    settings: Settings
    db: Database
    metrics: Metrics
    transitions: TransitionService
    remediation: RemediationService
    guilds: GuildSettingsService
    embedded: EmbeddedPostgres | None = None


def register_settings_secrets(settings: Settings) -> None:
    for secret in (settings.discord_token, settings.api_token, settings.database_url):
        if secret is not None:
            register_secret(secret.get_secret_value())
    if settings.database_url is not None:
        from sqlalchemy.engine import make_url

        password = make_url(settings.database_url.get_secret_value()).password
        register_secret(str(password) if password else None)


async def database_url(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    if settings.database_url is not None:
        return settings.database_url.get_secret_value(), None
    embedded = await asyncio.to_thread(start_embedded, settings.data_dir / "pg")
    return embedded.url, embedded


def build_metrics() -> Metrics:
    return PrometheusMetrics()


@asynccontextmanager
async def open_container(settings: Settings, *, migrate: bool = True,
                         application_name: str = "lifeline") -> AsyncIterator[Container]:
    register_settings_secrets(settings)
    url, embedded = await database_url(settings)
    try:
        if migrate:
            await upgrade(url)
        db = Database(url, pool_size=settings.db_pool_size,
                      max_overflow=settings.db_max_overflow,
                      statement_cache_size=settings.db_statement_cache_size,
                      application_name=application_name)
        try:
            metrics = build_metrics()
            recorder = DeadLetterRecorder(db)
            policy = RetryPolicy(settings.transition_max_attempts,
                                 settings.transition_backoff_initial_seconds,
                                 settings.transition_backoff_max_seconds)
            transitions = TransitionService(db, recorder, policy, metrics)
            remediation = RemediationService(db, transitions,
                                             retention_days=settings.retention_days,
                                             metrics=metrics)
            yield Container(settings, db, metrics, transitions, remediation,
                            GuildSettingsService(db), embedded)
        finally:
            await db.dispose()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
