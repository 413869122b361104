"""The API over the test database: an in-process app (httpx ASGITransport) and helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from bot.api.app import create_app
from bot.container import Container
from bot.prometheus import PrometheusMetrics
from bot.settings import Settings
from domain.deadletters import DeadLetterRecorder
from domain.errors import TransitionDeadLettered
from domain.guilds import GuildSettingsService
from domain.lifecycle import Operation, State
from domain.persistence.database import Database
from domain.remediation import RemediationService
from domain.transitions import RetryPolicy, TransitionService
from tests.conftest import Services
from tests.helpers import GUILD, cmd, path_to

TOKEN = "test-api-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def api_settings(database_url: str) -> Settings:
    return Settings(_env_file=None, api_token=SecretStr(TOKEN),  # type: ignore[call-arg]
                    database_url=SecretStr(database_url))


def build_container(db: Database, database_url: str) -> Container:
    """What open_container builds, on the test database (and with fast retries)."""
    metrics = PrometheusMetrics()
    transitions = TransitionService(
        db, DeadLetterRecorder(db),
        RetryPolicy(max_attempts=5, backoff_initial=0.001, backoff_max=0.01), metrics)
    remediation = RemediationService(db, transitions, metrics=metrics)
    return Container(api_settings(database_url), db, metrics, transitions, remediation,
                     GuildSettingsService(db))


@pytest.fixture
def container(services: Services, migrated: str) -> Container:
    return build_container(services.db, migrated)


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(container), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api",
                                 headers=AUTH) as http:
        yield http


async def drive(services: Services, user: int, target: State, guild: int = GUILD) -> None:
    for op in path_to(target):
        await services.transitions.apply(cmd(op, user, guild))


def lose_every_write(container: Container) -> None:
    """Every compare-and-set of the container's TransitionService finds zero rows changed."""

    async def lose(conn, command, observed, to_state):
        return None

    container.transitions._write = lose  # type: ignore[method-assign]


async def dead_letter(container: Container, user: int, op: Operation = Operation.VERIFY,
                      guild: int = GUILD) -> int:
    """A real dead letter (retries exhausted), written through the API's own service."""
    original = container.transitions._write
    lose_every_write(container)
    try:
        with pytest.raises(TransitionDeadLettered) as info:
            await container.transitions.apply(cmd(op, user, guild))
    finally:
        container.transitions._write = original  # type: ignore[method-assign]
    return info.value.dead_letter_id
