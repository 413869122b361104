"""Per-channel message rate limits and injected faults.

Rate limits follow Discord's bucket model: a fixed window that opens on the
first request, ``limit`` requests per ``per`` seconds, advertised on every
answer with ``X-RateLimit-*`` headers. discord.py reads ``Remaining`` and
``Reset-After`` to wait before the bucket is empty, and on a 429 sleeps the
body's ``retry_after`` and retries (only if the answer carries a ``Via``
header; otherwise it assumes a Cloudflare ban and raises).
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["500", "403", "404", "429", "hang"]
FAULT_KINDS: tuple[str, ...] = ("500", "403", "404", "429", "hang")


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    bucket: str

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": f"{time.time() + self.reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{self.reset_after:.3f}",
            "X-RateLimit-Bucket": self.bucket,
        }
        if not self.allowed:
            headers["X-RateLimit-Scope"] = "user"
            headers["Retry-After"] = str(max(1, math.ceil(self.reset_after)))
        return headers


class RateLimiter:
    """Fixed-window buckets keyed by (route, major parameter)."""

    def __init__(
        self, limit: int = 5, per: float = 5.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.per = per
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, route: str, major: str) -> RateDecision:
        """Count one request; the decision says whether it may go through."""
        bucket = hashlib.sha256(route.encode()).hexdigest()[:16]
        key = f"{bucket}:{major}"
        now = self._clock()
        start, count = self._windows.get(key, (now, 0))
        if now >= start + self.per:
            start, count = now, 0
        # Round up so a client sleeping reset_after never arrives before the window ends.
        reset_after = math.ceil((start + self.per - now) * 1000) / 1000
        if count >= self.limit:
            self._windows[key] = (start, count)
            return RateDecision(False, self.limit, 0, reset_after, bucket)
        count += 1
        self._windows[key] = (start, count)
        return RateDecision(True, self.limit, self.limit - count, reset_after, bucket)

    def exhaust(self, route: str, major: str) -> None:
        """Use up a bucket, as if other requests had just spent it."""
        while self.hit(route, major).allowed:
            pass


@dataclass
class Fault:
    """The next ``remaining`` calls matching ``method`` and ``route`` get ``kind``."""

    method: str
    route: str
    kind: str
    remaining: int
    retry_after: float = 1.0
    hang_seconds: float = 1.0
    hits: int = 0

    def matches(self, method: str, path: str, template: str | None) -> bool:
        if self.method not in ("*", method):
            return False
        return self.route == template or fnmatch.fnmatchcase(path, self.route)


class FaultInjector:
    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def add(
        self,
        method: str,
        route: str,
        kind: int | str,
        count: int = 1,
        *,
        retry_after: float = 1.0,
        hang_seconds: float = 1.0,
    ) -> Fault:
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, not {kind!r}")
        if count < 1:
            raise ValueError("count must be at least 1")
        fault = Fault(
            method.upper(), route, kind, count, retry_after=retry_after, hang_seconds=hang_seconds
        )
        self.faults.append(fault)
        return fault

    def take(self, method: str, path: str, template: str | None) -> Fault | None:
        """The first armed fault for this call, spending one of its uses."""
        for fault in self.faults:
            if fault.remaining > 0 and fault.matches(method, path, template):
                fault.remaining -= 1
                fault.hits += 1
                return fault
        return None

    def clear(self) -> None:
        self.faults.clear()
