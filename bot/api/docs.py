"""The API's documentation page, `/api/v1/docs`, working offline.

swagger-ui comes from this package, not from a CDN: `static/swagger/` holds swagger-ui-dist
5.35.0's `swagger-ui-bundle.js` and `swagger-ui.css` as npm ships them (Apache-2.0: LICENSE,
NOTICE and the bundle's third-party licences beside them), plus Lifeline's own
`lifeline-init.js`, the page's start-up script, and `lifeline-docs.css`, darker colours where
swagger-ui's fall below WCAG AA contrast. The page runs no inline script, so its
Content-Security-Policy allows scripts from the app itself only; the same policy keeps the
page out of frames and stops it from reaching any other host (swagger-ui's validator badge,
which loads from validator.swagger.io, is turned off in the start-up script).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

ASSETS_DIR = Path(__file__).parent / "static" / "swagger"

# swagger-ui sets element styles from script (allowed under style-src 'self': CSSOM changes
# are not inline styles) and needs data: images for the icons its stylesheet embeds.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
    "font-src 'self'", "connect-src 'self'", "base-uri 'none'", "form-action 'none'",
    "frame-ancestors 'none'",
])
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: documentation</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="stylesheet" href="{assets}/lifeline-docs.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/lifeline-init.js"></script>
</body>
</html>
"""


class _Assets(StaticFiles):
    """The vendored files, with the page's security headers (nosniff matters for scripts)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def install_docs(app: FastAPI, *, docs_url: str, assets_url: str, openapi_url: str) -> None:
    """Serve the page at `docs_url` and its files under `assets_url` (both public: the
    request guard lets them through without a token, like the OpenAPI document)."""
    page = PAGE.format(title=app.title, assets=assets_url, openapi_url=openapi_url)

    @app.get(docs_url, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page, headers=SECURITY_HEADERS)

    app.mount(assets_url, _Assets(directory=ASSETS_DIR), name="docs-assets")
