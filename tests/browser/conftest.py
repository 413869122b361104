"""A real Chromium, driven by Playwright's async API, for tests of what the app serves.

One browser per test session (launching costs about a second); a fresh context and page per
test, with every request to a host other than this machine aborted. Without a Chromium the
tests fail with a one-line reason: they are never skipped.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.browser.chromium import NOT_FOUND, find_chromium
from tests.browser.support import PageWatch


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    found = find_chromium()
    if found is None:
        pytest.fail(NOT_FOUND, pytrace=False)
    return found


@pytest.fixture(scope="session")
async def browser(chromium_executable: str) -> AsyncIterator[Browser]:
    # Chromium's own sandbox cannot start as root (containers, CI).
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=chromium_executable, headless=True, args=args)
        yield chromium
        await chromium.close()


@pytest.fixture
def watch() -> PageWatch:
    return PageWatch()


@pytest.fixture
async def context(browser: Browser, watch: PageWatch) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800},
                                    locale="en-GB", timezone_id="UTC")
    await ctx.route("**/*", watch.only_loopback)
    yield ctx
    await ctx.close()


@pytest.fixture
async def page(context: BrowserContext, watch: PageWatch) -> Page:
    new = await context.new_page()
    watch.attach(new)
    return new
