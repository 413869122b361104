"""Authentication, credentials in the URL, body limits, and what the access log shows."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.api.guard import MAX_BODY_BYTES
from tests.api.support import TOKEN
from tests.helpers import GUILD, count, next_user
from tests.wiring import ProcessServices

MEMBER = f"/api/v1/guilds/{GUILD}/members/{10**17}"
ROUTES = [("GET", MEMBER), ("GET", f"{MEMBER}/transitions"), ("POST", f"{MEMBER}/transitions"),
          ("GET", f"/api/v1/guilds/{GUILD}/dead-letters"),
          ("GET", f"/api/v1/guilds/{GUILD}/dead-letters/stats"),
          ("GET", f"/api/v1/guilds/{GUILD}/dead-letters/1"),
          ("POST", f"/api/v1/guilds/{GUILD}/dead-letters/1/retry"),
          ("POST", f"/api/v1/guilds/{GUILD}/dead-letters/1/resolve"),
          ("POST", f"/api/v1/guilds/{GUILD}/dead-letters/1/dismiss"),
          ("POST", f"/api/v1/guilds/{GUILD}/dead-letters/1/reopen"),
          ("POST", f"/api/v1/guilds/{GUILD}/dead-letters/retry-group")]


@pytest.fixture
async def anonymous(client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=client._transport, base_url="http://api") as http:
        yield http


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_api_route_needs_the_bearer_token(
        anonymous: httpx.AsyncClient, method: str, path: str) -> None:
    wrong_headers: list[dict[bytes, bytes]] = [{}] + [{b"Authorization": value} for value in (
        b"Bearer wrong-token-of-some-length", f"Bearer {TOKEN}x".encode(),
        f"Bearer {TOKEN[:-1]}".encode(), f"Basic {TOKEN}".encode(), TOKEN.encode(),
        b"Bearer", b"Bearer \xff\xfe", f"Bearer  {TOKEN} {TOKEN}".encode())]
    for headers in wrong_headers:
        # Malformed body too: the answer is 401 before anything is read or validated.
        response = await anonymous.request(method, path, headers=headers, content=b"{oops")
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN not in response.text


async def test_scheme_is_case_insensitive(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get(MEMBER, headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 404


@pytest.mark.parametrize("query", [
    {"token": TOKEN}, {"access_token": TOKEN}, {"api_key": "anything"}, {"Token": "x"},
    {"limit": TOKEN}, {"q": f"prefix{TOKEN}"},
])
async def test_a_token_in_the_query_string_is_refused_and_never_logged(
        client: httpx.AsyncClient, services: ProcessServices, query: dict[str, str],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    user = next_user()
    url = f"/api/v1/guilds/{GUILD}/members/{user}/transitions"
    # Even with a correct header: the URL has leaked the token, the request is refused.
    response = await client.post(url, params=query,
                                 json={"operation": "join", "idempotency_key": "k"})
    assert response.status_code == 401
    assert response.json()["error"] == "token_in_query"
    assert await count(services.db, "members", "user_id = :u", u=user) == 0
    for path in ("/healthz", "/metrics", "/api/v1/openapi.json"):
        assert (await client.get(path, params=query)).status_code == 401
    server_side = "\n".join(r.getMessage() for r in caplog.records
                            if not r.name.startswith(("httpx", "httpcore")))  # the client's
    assert "bot.api.access" in {r.name for r in caplog.records}
    assert TOKEN not in server_side and "token" not in server_side.lower()


async def test_access_log_has_path_status_and_no_query(
        client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.api.access")
    await client.get(f"/api/v1/guilds/{GUILD}/dead-letters", params={"limit": 7})
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.api.access"]
    assert lines and lines[-1].startswith(f"GET /api/v1/guilds/{GUILD}/dead-letters 200 ")
    assert "limit" not in lines[-1]


async def test_body_over_64_kib_by_content_length_is_413(
        client: httpx.AsyncClient, services: ProcessServices) -> None:
    user = next_user()
    url = f"/api/v1/guilds/{GUILD}/members/{user}/transitions"
    big = b'{"operation": "join", "idempotency_key": "k", "reason": "' \
        + b"x" * MAX_BODY_BYTES + b'"}'
    response = await client.post(url, content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert await count(services.db, "members", "user_id = :u", u=user) == 0
    # Exactly at the limit is read (and refused by validation instead).
    at_limit = b'{"operation": "join", "idempotency_key": "k", "reason": "'
    at_limit += b"x" * (MAX_BODY_BYTES - len(at_limit) - 2) + b'"}'
    assert len(at_limit) == MAX_BODY_BYTES
    response = await client.post(url, content=at_limit,
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 422


async def test_streamed_chunked_body_over_64_kib_is_413(
        client: httpx.AsyncClient, services: ProcessServices) -> None:
    user = next_user()
    url = f"/api/v1/guilds/{GUILD}/members/{user}/transitions"
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"operation": "join", "idempotency_key": "k", "reason": "'
        for _ in range(200):  # 200 x 1 KiB, no Content-Length
            sent += 1
            yield b"x" * 1024
        yield b'"}'

    response = await client.post(url, content=chunks(),
                                 headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert sent < 200  # it stopped reading once over the limit
    assert await count(services.db, "members", "user_id = :u", u=user) == 0


async def test_small_chunked_body_is_accepted(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"operation": "join", '
        yield b'"idempotency_key": "chunked"}'

    response = await client.post(f"/api/v1/guilds/{GUILD}/members/{next_user()}/transitions",
                                 content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and response.json()["applied"] is True


async def test_unknown_routes_and_methods_answer_in_the_error_shape(
        client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong_method = await client.delete(MEMBER)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"
