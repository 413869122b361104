"""A real Chromium, driven by Playwright's async API, for tests of what the app serves.

One browser per test session (launching costs about a second); a fresh context and page per
test, with every request to a host other than this machine aborted. Without a Chromium the
tests fail with a one-line reason: they are never skipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Generator

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.browser.chromium import NOT_FOUND, find_chromium
from tests.browser.support import PageWatch, screenshot

CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keeps the test's own outcome where the page fixture can read it at teardown."""
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[CALL_REPORT] = report
    return report


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
async def page(context: BrowserContext, watch: PageWatch,
               request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A page of the test's context; when the test fails, its last view is kept as
    test-artifacts/screenshots/failed-<test>.png."""
    new = await context.new_page()
    watch.attach(new)
    yield new
    report = request.node.stash.get(CALL_REPORT, None)
    if report is not None and report.failed and not new.is_closed():
        await screenshot(new, "failed-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name))
