"""The API over the test database: an in-process app (httpx ASGITransport) and helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.api.app import create_app
from bot.container import Container
from tests.api.support import AUTH, build_container
from tests.wiring import ProcessServices


@pytest.fixture
def container(services: ProcessServices, migrated: str) -> Container:
    return build_container(services, migrated)


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(container), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api",
                                 headers=AUTH) as http:
        yield http
