"""The API through a real uvicorn on 127.0.0.1, port 0, inside the test's own event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.api.server import ApiServer, ApiStartError, serve_api
from bot.container import Container
from tests.api.support import AUTH, TOKEN
from tests.helpers import GUILD, next_user


@pytest.fixture
async def server(container: Container) -> AsyncIterator[ApiServer]:
    api = ApiServer(container, host="127.0.0.1", port=0, gateway_status=lambda: True)
    await api.start()
    try:
        yield api
    finally:
        await api.stop()


async def test_real_server_answers_on_the_bound_port(server: ApiServer,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH) as http:
        health = await http.get("/healthz")
        assert health.status_code == 200 and health.json()["gateway"] == "connected"
        user = next_user()
        created = await http.post(f"/api/v1/guilds/{GUILD}/members/{user}/transitions",
                                  json={"operation": "join", "idempotency_key": "tcp"})
        assert created.status_code == 200 and created.json()["member"]["state"] == "joined"
        leaked = await http.get("/healthz", params={"access_token": TOKEN})
        assert leaked.status_code == 401
        assert "server" not in created.headers  # no version banner
    server_side = "\n".join(r.getMessage() for r in caplog.records
                            if not r.name.startswith(("httpx", "httpcore")))
    assert "GET /healthz 401" in server_side and TOKEN not in server_side


async def test_real_chunked_upload_over_the_limit_is_413(server: ApiServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = (f"POST /api/v1/guilds/{GUILD}/members/{next_user()}/transitions HTTP/1.1\r\n"
            f"Host: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    writer.write(head)
    chunk = b"x" * 8192
    try:
        for _ in range(10):  # 80 KiB in 8 KiB chunks
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    except ConnectionError:
        pass  # the server may close as soon as it has answered
    status_line = await asyncio.wait_for(reader.readline(), 10)
    rest = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 413"), status_line
    assert b'"error": "body_too_large"' in rest


async def test_a_busy_port_is_a_clear_error(server: ApiServer, container: Container) -> None:
    second = ApiServer(container, host="127.0.0.1", port=server.port)
    with pytest.raises(ApiStartError, match=f"127.0.0.1:{server.port}"):
        await second.start()


async def test_serve_api_runs_until_cancelled_and_releases_the_port(
        container: Container) -> None:
    started = asyncio.Event()
    probe = ApiServer(container, host="127.0.0.1", port=0)
    await probe.start()
    port = probe.port
    await probe.stop()  # a port known to be free for the next bind
    task = asyncio.create_task(serve_api(container, host="127.0.0.1", port=port,
                                         started=started))
    await asyncio.wait_for(started.wait(), 10)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        assert (await http.get("/healthz")).status_code == 200
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    again = ApiServer(container, host="127.0.0.1", port=port)
    await again.start()  # the socket was closed: the same port binds again
    await again.stop()
