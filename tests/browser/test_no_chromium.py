"""Without a Chromium the browser tests fail, in one line that says what to install: a
skipped browser test would let a fresh clone pass without ever opening a page."""

from __future__ import annotations

import asyncio
import os
import sys

from tests.browser.chromium import NOT_FOUND
from tests.browser.support import ROOT


async def test_the_browser_tests_fail_saying_why_when_no_chromium_is_found(
        migrated: str) -> None:
    env = {**os.environ, "LIFELINE_CHROMIUM": "/nonexistent/chromium",
           "TEST_DATABASE_URL": migrated}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs",
        "tests/browser/test_api_docs.py", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    text = output.decode()
    assert proc.returncode == 1, text
    assert "ERROR tests/browser/test_api_docs.py::" in text and NOT_FOUND in text, text
    assert "skipped" not in text and "SKIPPED" not in text, text
