"""What browser tests share: screenshots, axe-core, and a watch on what a page did wrong."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import ConsoleMessage, Page, Request, Route

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


@dataclass
class PageWatch:
    """Everything a page did that a user would call broken: console errors (CSP refusals
    among them), uncaught exceptions, and requests to any host but this machine (which the
    context aborts: the tests run offline, as the console must)."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    @property
    def csp_violations(self) -> list[str]:
        return [text for text in self.console_errors if "Content Security Policy" in text]

    async def only_loopback(self, route: Route, request: Request) -> None:
        host = urlsplit(request.url).hostname or ""
        if request.url.startswith(("data:", "blob:", "about:")) or host in LOOPBACK:
            await route.continue_()
        else:
            self.blocked.append(request.url)
            await route.abort("blockedbyclient")


async def screenshot(page: Page, name: str) -> Path:
    """The whole page as test-artifacts/screenshots/<name>.png (ignored by git)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def axe_violations(page: Page) -> dict[str, list[dict[str, Any]]]:
    """axe-core's WCAG 2.x A/AA rules over the page: violations by impact ("critical",
    "serious", "moderate", "minor"), each {"id", "help", "targets"}.

    axe is evaluated through the DevTools protocol rather than added as a <script> tag
    (`page.add_script_tag`): a tag's inline content is refused by the pages' own
    Content-Security-Policy (script-src 'self'), which these tests keep switched on.
    """
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(AXE.read_text())
    result = await page.evaluate(
        """async () => {
            const r = await axe.run(document, {runOnly: {type: "tag", values:
                ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.map(n => n.target.join(" "))}));
        }""")
    by_impact: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for violation in result:
        impact = violation.pop("impact") or "minor"
        by_impact[impact].append(violation)
    return dict(by_impact)


def serious(violations: dict[str, list[dict[str, Any]]]) -> set[str]:
    """The ids of the serious and critical violations: the ones the tests fail on."""
    return {v["id"] for impact in ("serious", "critical") for v in violations.get(impact, [])}
