"""Where the browser tests' Chromium comes from: the same order as `./run test`.

`./run test` may install one (Debian's package as root, or Playwright's download) and hands
the executable over in LIFELINE_CHROMIUM; run directly (`.venv/bin/pytest tests/browser`),
the tests look it up here without installing anything.
"""

from __future__ import annotations

import os
import shutil

ENV = "LIFELINE_CHROMIUM"
NOT_FOUND = ("no Chromium for the browser tests: install Debian's `chromium` (or any "
             "chromium on PATH), or run `.venv/bin/python -m playwright install chromium`, "
             "or set LIFELINE_CHROMIUM=/path/to/chromium")


def playwright_chromium() -> str | None:
    """The browser `python -m playwright install chromium` put in place, if it did."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        path = p.chromium.executable_path
    return path if path and os.access(path, os.X_OK) else None


def find_chromium() -> str | None:
    given = os.environ.get(ENV)
    if given:
        return given if os.access(given, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return playwright_chromium()
