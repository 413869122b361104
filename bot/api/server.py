"""Runs the API with uvicorn inside an event loop someone else owns (the bot's, or `api`'s).

uvicorn's `Server.serve()` would install its own SIGINT/SIGTERM handlers and re-raise the
signal after shutting down; in a shared process the owner of the loop decides when to stop,
so `_InProcessServer` leaves signals alone. The socket is bound here, before uvicorn starts:
a busy port is a clear `ApiStartError` (uvicorn would call `sys.exit`), and with port 0 the
chosen port is known at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator

import uvicorn

from bot.api.app import create_app
from bot.console.staff import StaffDirectory
from bot.container import Container

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_SECONDS = 5


class ApiStartError(Exception):
    """The API could not start (port in use, bad address); one line fit for stderr."""


class _InProcessServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ApiStartError(f"the HTTP API cannot listen on {host}:{port}: "
                            f"{exc.strerror or exc}") from exc


class ApiServer:
    """`await start()` returns once the API is listening; `port` is the bound port."""

    def __init__(self, container: Container, *, host: str, port: int,
                 gateway_status: Callable[[], bool] | None = None,
                 console_staff: StaffDirectory | None = None) -> None:
        self.host = host
        self.app = create_app(container, gateway_status=gateway_status,
                              console_staff=console_staff)
        self._requested_port = port
        self._socket: socket.socket | None = None
        self._server = _InProcessServer(uvicorn.Config(
            self.app, log_config=None, access_log=False, lifespan="off",
            server_header=False, proxy_headers=False, ws="none",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS))
        self._task: asyncio.Task[None] | None = None
        # uvicorn's access line carries the query string (where a careless client puts a
        # token); RequestGuard's AccessLog writes the line instead, without it.
        logging.getLogger("uvicorn.access").setLevel(logging.CRITICAL + 1)

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the API server is not started")
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the API server is already started")
        self._socket = bind_socket(self.host, self._requested_port)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]),
                                         name="lifeline-api")
        while not self._server.started:  # uvicorn sets it at the end of its startup
            done, _ = await asyncio.wait({self._task}, timeout=0.01)
            if done:
                error = self._task.exception()
                raise ApiStartError(f"the HTTP API stopped while starting: {error}")
        log.info("HTTP API listening on %s", self.url)

    async def wait(self) -> None:
        """Until the server stops (only after `stop()`, or when uvicorn fails)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (bounded), close the socket."""
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await self._task
        finally:
            self._task = None
            if self._socket is not None:
                self._socket.close()
            log.info("HTTP API stopped")


async def serve_api(container: Container, *, host: str, port: int,
                    gateway_status: Callable[[], bool] | None = None,
                    started: asyncio.Event | None = None) -> None:
    """Serve until cancelled, then shut down cleanly. For the bot's own loop:

        task = asyncio.create_task(serve_api(container, host=..., port=...,
                                             gateway_status=lambda: not bot.is_closed()))
        ...
        task.cancel(); await asyncio.gather(task, return_exceptions=True)

    Use ApiServer directly when the bound port is needed (port 0).
    """
    server = ApiServer(container, host=host, port=port, gateway_status=gateway_status)
    await server.start()
    if started is not None:
        started.set()
    try:
        await server.wait()
    finally:
        await server.stop()
