"""/api/v1/docs works offline: swagger-ui comes from the package, the page runs no inline
script, and its headers keep it out of frames and away from other hosts."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.types import Message

from bot.api.app import create_app
from bot.api.docs import ASSETS_DIR
from bot.container import Container

ROOT = Path(__file__).resolve().parents[2]
ASSETS = "/api/v1/docs/assets"
# A URL a page would load something from: src/href attributes, CSS url(), @import, and
# swagger-ui's own settings (url:, validatorUrl:).
ASSET_URL = re.compile(r"""(?:(?:src|href)\s*=\s*["']?|url\(\s*["']?|@import\s+["']?"""
                       r"""|(?:url|validatorUrl)\s*:\s*["'])(https?://[^"')\s]+)""")
# swagger-ui's one default that would load from another host: the validator badge, which
# lifeline-init.js turns off (validatorUrl: null).
BUNDLE_DEFAULTS = {"https://validator.swagger.io/validator"}


@pytest.fixture
async def anonymous(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(container), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield http


def scripts_and_styles(html: str) -> list[str]:
    return re.findall(r"""<(?:script|link)\b[^>]*(?:src|href)="([^"]+)\"""", html)


async def test_the_docs_page_loads_everything_from_the_app_without_a_token(
        anonymous: httpx.AsyncClient) -> None:
    page = await anonymous.get("/api/v1/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "https://" not in html and "http://" not in html
    assert re.search(r"<script>|<script\b(?![^>]*\bsrc=)[^>]*>", html) is None, \
        "an inline script: the page's CSP would block it"
    assets = scripts_and_styles(html)
    assert {f"{ASSETS}/swagger-ui.css", f"{ASSETS}/swagger-ui-bundle.js",
            f"{ASSETS}/lifeline-init.js", f"{ASSETS}/lifeline-docs.css",
            f"{ASSETS}/favicon-32x32.png"} == set(assets)
    expected_type = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for url in assets:
        served = await anonymous.get(url)
        assert served.status_code == 200, url
        assert served.headers["content-type"].startswith(expected_type[Path(url).suffix])
        assert served.headers["x-content-type-options"] == "nosniff"
        if url.endswith((".js", ".css")):
            found = set(ASSET_URL.findall(served.text))
            allowed = BUNDLE_DEFAULTS if url.endswith("swagger-ui-bundle.js") else set()
            assert found == allowed, f"{url} loads from another host: {found - allowed}"
    init = (await anonymous.get(f"{ASSETS}/lifeline-init.js")).text
    assert "https://" not in init and "validatorUrl: null" in init


async def test_the_docs_page_forbids_inline_script_frames_and_other_hosts(
        anonymous: httpx.AsyncClient) -> None:
    headers = (await anonymous.get("/api/v1/docs")).headers
    policy = dict(d.strip().split(" ", 1) for d in headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert all("unsafe" not in value and "http" not in value and "*" not in value
               for value in policy.values()), policy
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"


async def test_the_vendored_files_keep_their_licences() -> None:
    bundle = (ASSETS_DIR / "swagger-ui-bundle.js").read_text()
    assert bundle.startswith("/*! For license information please see "
                             "swagger-ui-bundle.js.LICENSE.txt */")
    assert (ASSETS_DIR / "swagger-ui-bundle.js.LICENSE.txt").is_file()
    assert "Apache License" in (ASSETS_DIR / "LICENSE").read_text()
    assert "normalize.css" in (ASSETS_DIR / "swagger-ui.css").read_text()[:400]


async def test_only_the_docs_files_are_public_under_the_api_prefix(
        anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get(f"{ASSETS}/no-such-file.js")).status_code == 404
    for path in ("/api/v1/docs/other", "/api/v1/docs-assets/swagger-ui.css",
                 f"{ASSETS}", "/api/v1/guilds/1/dead-letters"):
        answer = await anonymous.get(path)
        assert answer.status_code == 401, path


def test_every_docs_file_ships_in_the_installed_package() -> None:
    """An installed (non-editable) Lifeline serves the page from its own package data: each
    file the page loads matches pyproject's package-data for bot.api."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["bot.api"]
    package = ASSETS_DIR.parents[1]
    for file in ASSETS_DIR.iterdir():
        relative = file.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


async def test_a_dotted_path_under_the_docs_files_reaches_no_route(container: Container) -> None:
    """The guard lets /api/v1/docs/assets/... through without a token: a `..` there (which
    a raw client can send; uvicorn does not remove it) must not climb to an API route."""
    app = create_app(container)
    path = "/api/v1/docs/assets/../../guilds/1/dead-letters"
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "headers": [(b"host", b"api")],
             "server": ("api", 80), "client": ("127.0.0.1", 1)}
    await app(scope, receive, send)
    assert sent[0]["status"] == 404
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert b"entries" not in body and b"dead" not in body
