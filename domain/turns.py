"""Single flight per member inside one process.

Writers of one member in this process take turns (FIFO) instead of racing: a race here
would only be lost by one of them, at the cost of a wasted read and write, a backoff, and
often a dead letter (the loser's operation is no longer allowed after the conflict). The
compare-and-set on (state, version) still decides between processes.

A request whose idempotency key is already in flight for the member (a redelivered gateway
event, a double submit from the web app) waits for that request instead of queueing, and
answers as the database would: a repeat of its result. If that request did not succeed,
the follower runs on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from domain.commands import TransitionCommand, TransitionResult


class _Turn:
    __slots__ = ("holders", "lock", "pending")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.holders = 0  # requests for the member in flight in this process
        # idempotency key -> the outcome of the request in flight with it (None: failed)
        self.pending: dict[str, asyncio.Future[TransitionResult | None]] = {}


class Slot:
    """Inside a turn: either `shared` (an identical request's result) or the right to write."""

    __slots__ = ("_future", "shared")

    def __init__(self, shared: TransitionResult | None,
                 future: asyncio.Future[TransitionResult | None] | None) -> None:
        self.shared = shared
        self._future = future

    def publish(self, result: TransitionResult) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_result(result)


class MemberTurns:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        # Only members with a request in flight have an entry.
        self._turns: dict[tuple[int, int], _Turn] = {}

    def in_flight(self) -> int:
        return len(self._turns)

    @asynccontextmanager
    async def turn(self, cmd: TransitionCommand) -> AsyncIterator[Slot]:
        if not self.enabled:
            yield Slot(None, None)
            return
        member = (cmd.guild_id, cmd.user_id)
        turn = self._turns.get(member)
        if turn is None:
            turn = self._turns[member] = _Turn()
        turn.holders += 1
        mine: asyncio.Future[TransitionResult | None] | None = None
        try:
            leader = turn.pending.get(cmd.idempotency_key)
            if leader is not None:
                shared = await asyncio.shield(leader)
                if shared is not None and shared.operation == cmd.operation:
                    yield Slot(shared, None)
                    return
            if cmd.idempotency_key not in turn.pending:
                mine = asyncio.get_running_loop().create_future()
                turn.pending[cmd.idempotency_key] = mine
            async with turn.lock:
                yield Slot(None, mine)
        finally:
            if mine is not None:
                if not mine.done():
                    mine.set_result(None)  # failed or cancelled: followers run on their own
                if turn.pending.get(cmd.idempotency_key) is mine:
                    del turn.pending[cmd.idempotency_key]
            turn.holders -= 1
            if turn.holders == 0:
                del self._turns[member]


def shared_repeat(cmd: TransitionCommand, first: TransitionResult) -> TransitionResult:
    """What the database answers a repeated key: the first result, not applied again."""
    return TransitionResult(member=first.member, transition_id=first.transition_id,
                            applied=False, operation=cmd.operation,
                            from_state=first.from_state, attempts=0, conflicts=0)
