"""The sandbox's sense of time, a seam tests move forward instead of sleeping.

Every time window the sandbox enforces (the 3-second initial interaction
response, the 15-minute interaction token, the nonce window, the per-channel
rate limit) reads :meth:`Clock.now`. A test that needs "15 minutes later"
calls :meth:`Clock.advance` (or ``Sandbox.advance_clock``) and the next
request sees that much time gone, with no waiting.
"""

from __future__ import annotations

import time


class Clock:
    """Monotonic seconds (``time.monotonic()``) plus however far a test moved it."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        self._offset += seconds
