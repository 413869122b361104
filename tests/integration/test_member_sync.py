"""The member sync (domain/sync.py) on real PostgreSQL: races decided by the strict
compare-and-set, never by a dead letter; re-admission; repeats that write nothing."""

from __future__ import annotations

import asyncio

from domain.lifecycle import Operation, State
from domain.member_sync import MemberFlags
from domain.persistence.faults import Point
from tests.helpers import GUILD, check_invariants, cmd, count, drive, next_user
from tests.wiring import ProcessServices

DONE = MemberFlags(started_onboarding=True, completed_onboarding=True, pending=False)


async def _sync(services: ProcessServices, user: int, flags: MemberFlags = DONE) -> list[str]:
    outcome = await services.services.sync.sync(GUILD, user, flags,
                                                 eligibility_role_configured=False,
                                                 reason="test")
    return [op.value for op in outcome.applied]


async def test_two_processes_syncing_one_member_write_each_step_once(
        services: ProcessServices) -> None:
    """Process A reads the new member, then waits at its first write while process B
    syncs the member all the way; A's write then loses its compare-and-set, A decides again
    from what it finds, and writes nothing more."""
    user = next_user()
    other = services.another_process()
    gate = services.faults.hold(Point.MEMBERS_WRITE, when=lambda hit: hit.user_id == user)
    first = asyncio.create_task(_sync(services, user))
    await gate.reached.wait()
    assert await _sync(other, user) == [
        "join", "complete_onboarding", "mark_role_eligible", "accept_rules"]
    gate.release()
    assert await first == []
    assert services.metrics.conflicts["join"] == 1  # the race happened, and was lost
    history = await services.transitions.history(GUILD, user)
    assert [h.operation.value for h in reversed(history)] == [
        "join", "complete_onboarding", "mark_role_eligible", "accept_rules"]
    assert await count(services.db, "dead_letters") == 0
    await check_invariants(services.db)


async def test_a_web_app_write_between_read_and_write_is_respected(
        services: ProcessServices) -> None:
    """The web app asks for verification while a sync is about to accept the rules again:
    the member stays where the web app put them (a state the sync leaves alone)."""
    user = next_user()
    await drive(services, user, State.ROLE_ELIGIBLE)
    web_app = services.another_process()

    async def web_app_moves_first(_hit: object) -> None:
        await web_app.transitions.apply(cmd(Operation.ACCEPT_RULES, user))
        await web_app.transitions.apply(cmd(Operation.REQUEST_VERIFICATION, user))

    services.faults.call(Point.MEMBERS_WRITE, web_app_moves_first, times=1)
    assert await _sync(services, user) == []
    member = await services.transitions.get_member(GUILD, user)
    assert member is not None and member.state == State.VERIFICATION_PENDING
    assert await count(services.db, "dead_letters") == 0
    await check_invariants(services.db)


async def test_a_member_stored_as_gone_but_present_on_discord_is_readmitted_once(
        services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.JOINED)
    await services.transitions.apply(cmd(Operation.LEAVE, user))  # e.g. through the API
    assert await _sync(services, user, MemberFlags()) == ["join"]
    assert await _sync(services, user, MemberFlags()) == []  # a repeat writes nothing
    member = await services.transitions.get_member(GUILD, user)
    assert member is not None and (member.state, member.version) == (State.JOINED, 3)
    await check_invariants(services.db)
