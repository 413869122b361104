"""MemberTurns, single flight per member in one process: plain asyncio, no database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TypeVar

import pytest

from domain.commands import MemberSnapshot, TransitionCommand, TransitionResult
from domain.lifecycle import Operation, Source, State
from domain.turns import MemberTurns, Slot, shared_repeat

T = TypeVar("T")
GUILD, USER, OTHER_USER = 1, 2, 3


def command(key: str, op: Operation = Operation.VERIFY, user: int = USER) -> TransitionCommand:
    return TransitionCommand(guild_id=GUILD, user_id=user, operation=op, source=Source.API,
                             idempotency_key=key)


def result(op: Operation = Operation.VERIFY, transition_id: int = 41) -> TransitionResult:
    member = MemberSnapshot(GUILD, USER, State.VERIFIED, 7, datetime.now(UTC))
    return TransitionResult(member=member, transition_id=transition_id, applied=True,
                            operation=op, from_state=State.VERIFICATION_PENDING)


async def soon(awaitable: Awaitable[T]) -> T:
    """A hang is a failure here, not a stuck test run."""
    return await asyncio.wait_for(awaitable, 2)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class Holder:
    """Holds a member's turn until released; records what its slot was."""

    def __init__(self, turns: MemberTurns, cmd: TransitionCommand,
                 publish: TransitionResult | None = None, fail: bool = False) -> None:
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.slot: Slot | None = None

        async def run() -> None:
            async with turns.turn(cmd) as slot:
                self.slot = slot
                self.entered.set()
                await self.release.wait()
                if fail:
                    raise RuntimeError("write failed")
                if publish is not None:
                    slot.publish(publish)

        self.task = asyncio.create_task(run())


async def test_one_member_s_writers_take_turns_in_arrival_order() -> None:
    turns = MemberTurns()
    order: list[str] = []
    inside = 0
    first = Holder(turns, command("k0"))
    await soon(first.entered.wait())

    async def writer(name: str) -> None:
        nonlocal inside
        async with turns.turn(command(name)) as slot:
            assert slot.shared is None
            inside += 1
            assert inside == 1, "two writers of one member at once"
            order.append(name)
            await asyncio.sleep(0)
            inside -= 1

    writers = [asyncio.create_task(writer(f"w{i}")) for i in range(5)]
    await settle()
    assert order == [] and turns.in_flight() == 1
    first.release.set()
    await soon(asyncio.gather(first.task, *writers))
    assert order == ["w0", "w1", "w2", "w3", "w4"]
    assert turns.in_flight() == 0


async def test_another_member_does_not_wait() -> None:
    turns = MemberTurns()
    holder = Holder(turns, command("k"))
    await soon(holder.entered.wait())
    async with turns.turn(command("k", user=OTHER_USER)) as slot:  # would hang if it waited
        assert slot.shared is None
        assert turns.in_flight() == 2
    holder.release.set()
    await soon(holder.task)
    assert turns.in_flight() == 0


async def test_an_identical_request_in_flight_shares_the_result() -> None:
    turns = MemberTurns()
    first = result()
    leader = Holder(turns, command("same"), publish=first)
    await soon(leader.entered.wait())
    follower = Holder(turns, command("same"))
    await settle()
    assert not follower.entered.is_set()  # waiting for the leader, not writing
    leader.release.set()
    await soon(follower.entered.wait())
    assert follower.slot is not None and follower.slot.shared is first
    follower.release.set()
    await soon(asyncio.gather(leader.task, follower.task))
    assert turns.in_flight() == 0

    repeat = shared_repeat(command("same"), first)
    assert (repeat.applied, repeat.transition_id, repeat.member, repeat.attempts) == \
        (False, first.transition_id, first.member, 0)


async def test_the_same_key_with_another_operation_runs_on_its_own() -> None:
    turns = MemberTurns()
    leader = Holder(turns, command("same", Operation.VERIFY), publish=result(Operation.VERIFY))
    await soon(leader.entered.wait())
    follower = Holder(turns, command("same", Operation.REJECT))
    leader.release.set()
    await soon(follower.entered.wait())
    assert follower.slot is not None and follower.slot.shared is None  # its own write
    follower.release.set()
    await soon(asyncio.gather(leader.task, follower.task))
    assert turns.in_flight() == 0


async def test_a_failed_leader_lets_its_followers_run() -> None:
    turns = MemberTurns()
    leader = Holder(turns, command("same"), fail=True)
    await soon(leader.entered.wait())
    followers = [Holder(turns, command("same")) for _ in range(2)]
    await settle()
    leader.release.set()
    with pytest.raises(RuntimeError):
        await soon(leader.task)
    await soon(followers[0].entered.wait())
    assert followers[0].slot is not None and followers[0].slot.shared is None
    assert not followers[1].entered.is_set()  # still one writer at a time
    followers[0].release.set()
    await soon(followers[1].entered.wait())
    followers[1].release.set()
    await soon(asyncio.gather(*(f.task for f in followers)))
    assert turns.in_flight() == 0


async def test_a_leader_that_publishes_nothing_is_a_failed_leader() -> None:
    turns = MemberTurns()
    leader = Holder(turns, command("same"))  # refused, say: nothing to share
    await soon(leader.entered.wait())
    follower = Holder(turns, command("same"))
    leader.release.set()
    await soon(follower.entered.wait())
    assert follower.slot is not None and follower.slot.shared is None
    follower.release.set()
    await soon(asyncio.gather(leader.task, follower.task))


async def test_cancelled_waiters_leave_nothing_behind() -> None:
    turns = MemberTurns()
    holder = Holder(turns, command("k"))
    await soon(holder.entered.wait())
    queued = Holder(turns, command("other"))  # waits for the lock
    follower = Holder(turns, command("k"))  # waits for the holder's result
    last = Holder(turns, command("last"))
    await settle()
    queued.task.cancel()
    follower.task.cancel()
    for task in (queued.task, follower.task):
        with pytest.raises(asyncio.CancelledError):
            await soon(task)
    assert turns.in_flight() == 1  # the member: its holder and `last` are still in flight
    holder.release.set()
    await soon(last.entered.wait())  # the turn passed over the cancelled ones
    last.release.set()
    await soon(asyncio.gather(holder.task, last.task))
    assert turns.in_flight() == 0
    async with turns.turn(command("k")) as slot:  # nothing stale: no wait, no shared result
        assert slot.shared is None


async def test_a_writer_cancelled_in_its_turn_hands_it_on() -> None:
    turns = MemberTurns()
    holder = Holder(turns, command("k"), publish=result())
    await soon(holder.entered.wait())
    follower = Holder(turns, command("k"))
    other = Holder(turns, command("other"))
    await settle()
    follower.release.set()
    other.release.set()
    holder.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await soon(holder.task)
    # Both get their turn (the follower re-queues for the lock, behind `other`).
    await soon(asyncio.gather(follower.task, other.task))
    assert follower.slot is not None and follower.slot.shared is None  # ran on its own
    assert other.slot is not None and other.slot.shared is None
    assert turns.in_flight() == 0


async def test_disabled_turns_let_writers_overlap() -> None:
    turns = MemberTurns(enabled=False)
    holder = Holder(turns, command("k"), publish=result())
    await soon(holder.entered.wait())
    async with turns.turn(command("k")) as slot:  # no waiting, no sharing
        assert slot.shared is None
        assert turns.in_flight() == 0
    holder.release.set()
    await soon(holder.task)
