"""What the outbox worker asks of the Discord edge, and what it gets back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from domain.records import Claimed
from domain.vocabulary import OutboxKind


class DeliveryError(Exception):
    """A delivery that did not happen. `retryable` False ends the rows as dead_lettered;
    `whole_lane` (with it) says the destination itself refused (a deleted channel, a lost
    permission), so the lane's later rows are dead-lettered too rather than tried in vain."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True,
                 retry_after: float | None = None, whole_lane: bool = False,
                 cause: str | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.whole_lane = whole_lane
        # Why, as staff can act on it (a DeliveryCause value), and Discord's error code.
        self.cause = cause
        self.code = code


@dataclass(frozen=True)
class Receipt:
    status: int
    message_id: int | None = None


class Deliverer(Protocol):
    """The Discord side, implemented in bot/ with discord.py. The worker claims the rows of
    a lane in order and asks the deliverer how many go out together; a resend after a failure
    or a crash is exactly the same rows again."""

    def max_batch(self, kind: OutboxKind) -> int:
        """At most how many rows of a lane of this kind one delivery may carry (1: one by
        one). The worker claims no more than this with a lane's head."""
        ...

    def take(self, rows: Sequence[Claimed]) -> int:
        """How many of these rows (a lane's, in order, the head first) fit one delivery: at
        least 1. Called while the rows are being claimed: it must not fail or wait."""
        ...

    async def deliver(self, rows: Sequence[Claimed]) -> Receipt:
        """Deliver the rows as one; raise DeliveryError when it did not happen. The same rows
        may come again (a retry, or a takeover after a crash): a delivery that already
        reached Discord must not be posted twice."""
        ...
