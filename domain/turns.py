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
from types import TracebackType

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

    async def take_free(self, members: list[tuple[int, int]]) -> list[bool]:
        """A batch's turns: each member's turn taken now when no request of theirs is in
        flight in this process, else not (the batch leaves that member to the single path,
        which queues behind). Never waits. Give them back with `give_back`."""
        taken = []
        for member in members:
            if not self.enabled:
                taken.append(True)
                continue
            if member in self._turns:
                taken.append(False)
                continue
            turn = self._turns[member] = _Turn()
            turn.holders = 1
            await turn.lock.acquire()  # free: returns at once
            taken.append(True)
        return taken

    def give_back(self, members: list[tuple[int, int]]) -> None:
        if not self.enabled:
            return
        for member in members:
            turn = self._turns[member]
            turn.lock.release()
            turn.holders -= 1
            if turn.holders == 0:
                del self._turns[member]

    def turn(self, cmd: TransitionCommand) -> _TurnContext:
        """`async with turns.turn(cmd) as slot:` the member's turn, or an identical
        request's result in `slot.shared`. (A class rather than @asynccontextmanager: this
        runs for every transition, and the generator machinery cost more than the rest.)"""
        return _TurnContext(self, cmd)


class _TurnContext:
    __slots__ = ("cmd", "locked", "mine", "turn", "turns")

    def __init__(self, turns: MemberTurns, cmd: TransitionCommand) -> None:
        self.turns = turns
        self.cmd = cmd
        self.turn: _Turn | None = None
        self.mine: asyncio.Future[TransitionResult | None] | None = None
        self.locked = False

    async def __aenter__(self) -> Slot:
        if not self.turns.enabled:
            return Slot(None, None)
        cmd, member = self.cmd, (self.cmd.guild_id, self.cmd.user_id)
        turn = self.turns._turns.get(member)
        if turn is None:
            turn = self.turns._turns[member] = _Turn()
        self.turn = turn
        turn.holders += 1
        try:
            leader = turn.pending.get(cmd.idempotency_key)
            if leader is not None:
                shared = await asyncio.shield(leader)
                if shared is not None and shared.operation == cmd.operation:
                    return Slot(shared, None)
            if cmd.idempotency_key not in turn.pending:
                self.mine = asyncio.get_running_loop().create_future()
                turn.pending[cmd.idempotency_key] = self.mine
            await turn.lock.acquire()
            self.locked = True
            return Slot(None, self.mine)
        except BaseException:  # cancelled while waiting: __aexit__ will not run
            self._leave()
            raise

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self._leave()

    def _leave(self) -> None:
        turn = self.turn
        if turn is None:
            return
        self.turn = None
        if self.locked:
            self.locked = False
            turn.lock.release()
        mine = self.mine
        if mine is not None:
            if not mine.done():
                mine.set_result(None)  # failed or cancelled: followers run on their own
            if turn.pending.get(self.cmd.idempotency_key) is mine:
                del turn.pending[self.cmd.idempotency_key]
        turn.holders -= 1
        if turn.holders == 0:
            del self.turns._turns[(self.cmd.guild_id, self.cmd.user_id)]


def shared_repeat(cmd: TransitionCommand, first: TransitionResult) -> TransitionResult:
    """What the database answers a repeated key: the first result, not applied again."""
    return TransitionResult(member=first.member, transition_id=first.transition_id,
                            applied=False, operation=cmd.operation,
                            from_state=first.from_state, attempts=0, conflicts=0)
