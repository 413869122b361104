"""Pointing discord.py at a sandbox: the two overrides a bot needs.

discord.py reads ``discord.http.Route.BASE`` each time it builds a request
(interaction callbacks and webhooks included) and opens
``DiscordWebSocket.DEFAULT_GATEWAY`` with ``?v=10&encoding=json&compress=...``
appended; ``AutoShardedClient`` without a shard count asks ``GET /gateway/bot``
for the URL instead, and reconnects go to READY's ``resume_gateway_url``. All
three lead to the sandbox once these two are set, before ``login()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


def api_base(base_url: str) -> str:
    """``http://127.0.0.1:PORT`` -> the value for ``discord.http.Route.BASE``."""
    return base_url.rstrip("/") + "/api/v10"


def gateway_url(base_url: str) -> str:
    """``http://127.0.0.1:PORT`` -> the value for ``DiscordWebSocket.DEFAULT_GATEWAY``."""
    root = base_url.rstrip("/")
    if root.startswith("https://"):
        return "wss://" + root.removeprefix("https://") + "/gateway"
    return "ws://" + root.removeprefix("http://") + "/gateway"


@contextmanager
def client_overrides(base_url: str) -> Iterator[None]:
    """Point discord.py (process-wide) at the sandbox at ``base_url``; restore on exit.

    Usage::

        async with Sandbox() as sandbox:
            with client_overrides(sandbox.base_url):
                await bot.start(sandbox.token)
    """
    import discord.gateway
    import discord.http
    import yarl

    route = discord.http.Route
    websocket = discord.gateway.DiscordWebSocket
    saved_base, saved_gateway = route.BASE, websocket.DEFAULT_GATEWAY
    route.BASE = api_base(base_url)
    websocket.DEFAULT_GATEWAY = yarl.URL(gateway_url(base_url))
    try:
        yield
    finally:
        route.BASE = saved_base
        websocket.DEFAULT_GATEWAY = saved_gateway
