"""Fixtures for sandbox tests: a started sandbox with a guild (helpers: support.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from sandbox import Guild, Perm, Sandbox, SandboxConfig


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(message_rate_per=1.0)) as running:
        yield running


@pytest.fixture
def guild(sandbox: Sandbox) -> Guild:
    return sandbox.create_guild(
        "Test Guild", channels=("general", "mod-log"), roles={"Staff": int(Perm.MANAGE_GUILD)}
    )
