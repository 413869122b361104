"""Every HTTP route README quotes exists, with that method: a reader who copies one gets an
answer, not a 404 (the Try it block, the route table, the audit and deliveries paths)."""

from __future__ import annotations

import re
from pathlib import Path

from bot.api.app import create_app
from domain.persistence.database import Database
from tests.api.support import build_container
from tests.wiring import ProcessServices

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "/api/v1/guilds/{}"
URL = "postgresql://readme@localhost/readme"  # never connected: only the routes are read
ASYNC_URL = "postgresql+asyncpg://readme@localhost/readme"
OWN_PROSE_ROOTS = ("healthz", "metrics")


def _shape(path: str) -> str:
    """/api/v1/guilds/$GUILD/members/{user_id}?x= -> /api/v1/guilds/{}/members/{}"""
    path = path.split("?", 1)[0].rstrip("/")
    return re.sub(r"\{[^}]*\}|\$\{?\w+\}?", "{}", path)


def served() -> set[tuple[str, str]]:
    app = create_app(build_container(ProcessServices(Database(ASYNC_URL)), URL))
    return {(method.upper(), _shape(path)) for path, item in app.openapi()["paths"].items()
            for method in item}


def quoted() -> set[tuple[str, str]]:
    readme = (ROOT / "README.md").read_text()
    found: set[tuple[str, str]] = set()
    for method, path in re.findall(r"\b(GET|POST|DELETE) (/api/v1/[^\s`,)]+)", readme):
        found.add((method, _shape(path)))
    for line in readme.splitlines():  # table rows: paths under /api/v1/guilds/{id}
        for method, path in re.findall(r"`(GET|POST|DELETE) (/[^`\s]+)`", line):
            if path.startswith("/api/"):
                continue
            if not line.startswith("| `"):  # prose: a path of its own (/healthz, /metrics)
                # (Prose also quotes Discord's and the sandbox's routes: /oauth2/..., the
                # bot token's /guilds/...; those are not Lifeline's.)
                if path.split("/")[1] in OWN_PROSE_ROOTS:
                    found.add((method, _shape(path)))
                continue
            head, _, tail = path.partition("\\|")
            stem = head.rsplit("/", 1)[0] if tail else head
            for leaf in ([head.rsplit("/", 1)[1], *tail.split("\\|")] if tail else [""]):
                found.add((method, _shape(PREFIX + (f"{stem}/{leaf}" if leaf else stem))))
    for path in re.findall(r"\$LIFELINE_API(/[^\s\"']+)", readme):  # Try it's curl GETs
        found.add(("GET", _shape(path)))
    return found


def test_every_route_readme_quotes_is_served() -> None:
    routes, cited = served(), quoted()
    assert len(cited) >= 15, cited  # the parser still finds the table and the Try it block
    assert cited - routes == set()
