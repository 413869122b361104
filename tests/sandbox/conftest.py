"""Fixtures for sandbox tests: a started sandbox with a guild, an HTTP client session and the
OAuth2 application with the test callback registered (helpers: support.py, oauth_client.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from sandbox import Guild, Perm, Sandbox, SandboxConfig
from tests.sandbox.oauth_client import CALLBACK


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(message_rate_per=1.0)) as running:
        yield running


@pytest.fixture
def guild(sandbox: Sandbox) -> Guild:
    return sandbox.create_guild(
        "Test Guild", channels=("general", "mod-log"), roles={"Staff": int(Perm.MANAGE_GUILD)}
    )


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest_asyncio.fixture
async def app(sandbox: Sandbox, guild: Guild, http: aiohttp.ClientSession) -> dict[str, Any]:
    """The application's OAuth2 settings, with CALLBACK registered through the control API."""
    async with http.post(
        sandbox.base_url + "/_sandbox/oauth/app", json={"redirect_uris": [CALLBACK]}
    ) as resp:
        assert resp.status == 200
        return dict(await resp.json())
