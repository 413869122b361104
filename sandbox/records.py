"""What the sandbox saw, kept for tests to read back, and a way to wait for it.

Tests never sleep: they wait with :meth:`Notifier.wait_until`, which re-checks
a predicate each time anything in the sandbox changes (a REST call answered,
a gateway frame sent, an interaction answered), and on a short poll for state
on the bot's side, and fails after a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

POLL_INTERVAL = 0.02


@dataclass(frozen=True)
class Call:
    """One HTTP request the sandbox answered."""

    method: str
    path: str
    route: str | None
    query: dict[str, str]
    json: Any
    status: int
    at: float
    duration: float
    authorized: bool
    fault: str | None = None
    # The user id of a live OAuth2 Bearer token the call came with (``authorized`` is the bot).
    bearer_user: str | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"


@dataclass(frozen=True)
class RoleChange:
    guild_id: int
    user_id: int
    role_id: int
    action: str  # "add" or "remove"
    source: str  # "rest" (the bot did it) or "scenario"
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class NonceHit:
    """A POST whose ``nonce`` + ``enforce_nonce`` returned an earlier message."""

    channel_id: int
    nonce: str | int
    message_id: int
    at: float = field(default_factory=time.time)


class Notifier:
    """Wakes every waiter whenever something in the sandbox changes."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        # Called on every change too (the world store saves after them).
        self.listeners: list[Callable[[], None]] = []

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()
        for listener in list(self.listeners):
            listener()

    async def wait_until(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        what: str = "",
    ) -> T:
        """Return the first truthy value of ``predicate()``.

        It is re-checked on every sandbox change, and every ``POLL_INTERVAL``
        seconds for conditions on the bot's side that the sandbox cannot see.
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    result = predicate()
                    if result:
                        return result
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._event.wait(), POLL_INTERVAL)
        except TimeoutError:
            label = what or getattr(predicate, "__name__", "condition")
            raise TimeoutError(f"sandbox: {label} not met within {timeout:.1f}s") from None


class Recorder:
    """Append-only logs of REST calls, role changes and nonce hits."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.calls: list[Call] = []
        self.unknown_routes: list[Call] = []
        self.role_changes: list[RoleChange] = []
        self.duplicates_prevented: list[NonceHit] = []

    def call(self, call: Call, *, unknown: bool) -> None:
        self.calls.append(call)
        if unknown:
            self.unknown_routes.append(call)
        self.notifier.notify()

    def role_change(self, change: RoleChange) -> None:
        self.role_changes.append(change)
        self.notifier.notify()

    def nonce_hit(self, hit: NonceHit) -> None:
        self.duplicates_prevented.append(hit)
        self.notifier.notify()

    def calls_to(self, method: str, route: str) -> list[Call]:
        """Calls with this method and route template (``/channels/{channel_id}/messages``)."""
        return [c for c in self.calls if c.method == method and c.route == route]
