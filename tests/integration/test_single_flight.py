"""Writers of one member inside one process take turns, and identical requests share one write.

The compare-and-set between processes is covered by test_races.py (one service per writer,
and real OS processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import warnings
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy.pool import QueuePool

from domain.commands import TransitionResult
from domain.errors import TransitionDeadLettered
from domain.lifecycle import Operation, State, TransitionNotAllowed
from domain.persistence.faults import Point
from tests.helpers import GUILD, check_invariants, cmd, count, next_user, path_to
from tests.wiring import ProcessServices


async def _drive(services: ProcessServices, user: int, target: State) -> None:
    for op in path_to(target):
        await services.transitions.apply(cmd(op, user))


@contextlib.contextmanager
def no_connection_left_behind(services: ProcessServices) -> Iterator[None]:
    """Every pooled connection checked out inside the block is back at its end, returned
    by the code that took it (not found by the garbage collector, which SQLAlchemy reports
    with a warning and answers by terminating the connection)."""
    pool = services.db.engine.pool
    assert isinstance(pool, QueuePool)
    before = pool.checkedout()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()
    collected = [str(w.message) for w in caught if "non-checked-in" in str(w.message)]
    assert collected == [], collected
    assert pool.checkedout() == before


async def test_hot_member_writers_in_one_process_take_turns_without_conflicts(
        services: ProcessServices) -> None:
    # 20 writers hammer one member, each sending what its fresh read allows (the contention
    # benchmark's client). Separate services race and dead-letter (test_races.py); one
    # service queues them: a writer whose step was taken by the one ahead is refused.
    user = next_user()
    await _drive(services, user, State.VERIFICATION_PENDING)
    outcomes: Counter[str] = Counter()

    async def writer() -> None:
        for _ in range(10):
            member = await services.transitions.get_member(GUILD, user)
            assert member is not None
            op = Operation.VERIFY if member.state == State.VERIFICATION_PENDING \
                else Operation.REVERIFY
            try:
                await services.transitions.apply(cmd(op, user))
                outcomes["applied"] += 1
            except TransitionNotAllowed:
                outcomes["not_allowed"] += 1
            except TransitionDeadLettered as exc:
                outcomes[exc.reason_code] += 1

    await asyncio.gather(*(writer() for _ in range(20)))
    assert sum(outcomes.values()) == 200
    assert outcomes["applied"] > 0 and outcomes["not_allowed"] > 0  # they did overlap
    assert set(outcomes) == {"applied", "not_allowed"}
    assert sum(services.metrics.conflicts.values()) == 0
    assert await count(services.db, "dead_letters") == 0
    member = await services.transitions.get_member(GUILD, user)
    assert member is not None and member.version == 5 + outcomes["applied"]
    await check_invariants(services.db)
    assert services.transitions.turns.in_flight() == 0  # nothing kept once idle


async def test_concurrent_steps_of_one_member_apply_in_arrival_order(
        services: ProcessServices) -> None:
    # The whole onboarding sent at once, in order: each step waits for the one before it.
    user = next_user()
    steps = path_to(State.VERIFIED)
    results = await asyncio.gather(*(services.transitions.apply(cmd(op, user))
                                     for op in steps))
    assert [r.operation for r in results] == steps
    assert [r.member.version for r in results] == list(range(1, len(steps) + 1))
    assert all(r.applied for r in results)
    assert results[-1].member.state == State.VERIFIED
    await check_invariants(services.db)


async def test_identical_requests_in_flight_share_one_write(services: ProcessServices) -> None:
    # A redelivered event or a double submit: ten copies of one request at once.
    user = next_user()
    await _drive(services, user, State.VERIFICATION_PENDING)
    results: list[TransitionResult] = await asyncio.gather(*(
        services.transitions.apply(cmd(Operation.VERIFY, user, key="verify-once"))
        for _ in range(10)))
    assert sum(r.applied for r in results) == 1
    assert len({r.transition_id for r in results}) == 1
    assert {r.member.version for r in results} == {6}
    # The nine others were answered from the first one's result, without a database attempt.
    assert sorted(r.attempts for r in results) == [0] * 9 + [1]
    assert await count(services.db, "member_transitions",
                       "user_id = :u AND idempotency_key = 'verify-once'", u=user) == 1
    # A later repeat (nothing in flight) is answered by the database, the same way.
    again = await services.transitions.apply(cmd(Operation.VERIFY, user, key="verify-once"))
    assert not again.applied and again.transition_id == results[0].transition_id
    assert again.attempts == 1


async def test_a_follower_runs_on_its_own_when_the_request_it_waited_for_fails(
        services: ProcessServices) -> None:
    user = next_user()
    await _drive(services, user, State.JOINED)
    # Same key: `verify` is refused (joined), so the key stays unused and the second
    # request, a different operation, is applied under it.
    first, second = await asyncio.gather(
        services.transitions.apply(cmd(Operation.VERIFY, user, key="k1")),
        services.transitions.apply(cmd(Operation.START_ONBOARDING, user, key="k1")),
        return_exceptions=True)
    assert isinstance(first, TransitionNotAllowed)
    assert isinstance(second, TransitionResult) and second.applied
    assert second.member.state == State.ONBOARDING_IN_PROGRESS


async def test_a_cancelled_request_does_not_block_the_member(services: ProcessServices) -> None:
    user = next_user()
    await _drive(services, user, State.JOINED)
    # The first request is held at its read (its turn taken, its connection checked out)
    # and cancelled there; an identical one is waiting for its result.
    gate = services.faults.hold(Point.MEMBERS_READ, when=lambda hit: hit.key == "k2")
    with no_connection_left_behind(services):
        stuck = asyncio.create_task(
            services.transitions.apply(cmd(Operation.START_ONBOARDING, user, key="k2")))
        await asyncio.wait_for(gate.reached.wait(), 5)
        follower = asyncio.create_task(
            services.transitions.apply(cmd(Operation.START_ONBOARDING, user, key="k2")))
        await asyncio.sleep(0)
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        result = await asyncio.wait_for(follower, timeout=10)
    assert result.applied and result.member.state == State.ONBOARDING_IN_PROGRESS
    assert result.member.version == 2 and result.attempts == 1
    assert len(gate.hits) == 1  # the follower read on its own, not held
    # The cancelled request left nothing behind: no turn, no connection (above), no row.
    assert services.transitions.turns.in_flight() == 0
    assert await count(services.db, "member_transitions",
                       "user_id = :u AND idempotency_key = 'k2'", u=user) == 1
    assert await count(services.db, "dead_letters") == 0
    await check_invariants(services.db)


async def test_a_request_cancelled_while_waiting_for_its_turn_leaves_nothing_behind(
        services: ProcessServices) -> None:
    user = next_user()
    await _drive(services, user, State.JOINED)
    gate = services.faults.hold(Point.MEMBERS_READ, when=lambda hit: hit.key == "lead")
    with no_connection_left_behind(services):
        leader = asyncio.create_task(
            services.transitions.apply(cmd(Operation.START_ONBOARDING, user, key="lead")))
        await asyncio.wait_for(gate.reached.wait(), 5)
        waiting = [asyncio.create_task(services.transitions.apply(
            cmd(Operation.START_ONBOARDING, user, key=key))) for key in ("w1", "lead")]
        await asyncio.sleep(0)
        for task in waiting:  # one queued for the turn, one following the leader's key
            task.cancel()
        for task in waiting:
            with pytest.raises(asyncio.CancelledError):
                await task
        gate.release()
        assert (await asyncio.wait_for(leader, 10)).applied
    assert len(gate.hits) == 1  # the cancelled ones never reached the database
    assert services.transitions.turns.in_flight() == 0
    assert await count(services.db, "member_transitions",
                       "user_id = :u AND idempotency_key = 'w1'", u=user) == 0
    nxt = await asyncio.wait_for(services.transitions.apply(
        cmd(Operation.COMPLETE_ONBOARDING, user, key="after")), timeout=10)
    assert nxt.applied and nxt.member.version == 3
    await check_invariants(services.db)
