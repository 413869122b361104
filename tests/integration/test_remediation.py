"""RemediationService on a real PostgreSQL: list, show, retry, resolve, dismiss, reopen, stats."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from domain.errors import (
    AlreadyRetrying,
    EntryDismissed,
    InvalidInput,
    InvalidStatus,
    NotFound,
    StaleEntry,
    TransitionDeadLettered,
)
from domain.lifecycle import Operation, Source, State
from domain.persistence.faults import Point
from domain.remediation import CLAIM_BATCH, STALE_CLAIM_SECONDS
from tests.helpers import (
    GUILD,
    OTHER_GUILD,
    STAFF,
    check_invariants,
    cmd,
    count,
    drive,
    next_user,
    setup_log_channel,
)
from tests.wiring import ProcessServices

SIGNATURE = "verify/retries_exhausted/WriteConflict"


async def _dead_letter(services: ProcessServices, user: int, op: Operation = Operation.VERIFY,
                       guild: int = GUILD, key: str | None = None) -> int:
    """A real dead letter: every compare-and-set of this write loses (zero rows changed),
    through the services' fault seam (the rule is used up by the write's attempts)."""
    command = cmd(op, user, guild, source=Source.API, key=key)
    services.faults.lose_cas(times=services.settings.transition_max_attempts,
                             when=lambda hit: hit.key == command.idempotency_key)
    with pytest.raises(TransitionDeadLettered) as info:
        await services.transitions.apply(command)
    return info.value.dead_letter_id


async def test_open_entries_are_listed_newest_first_with_keyset_pages(
        services: ProcessServices) -> None:
    ids = []
    for _ in range(5):
        user = next_user()
        await drive(services, user, State.VERIFICATION_PENDING)
        ids.append(await _dead_letter(services, user))
    page1 = await services.remediation.page(GUILD, status="open", limit=2)
    assert [e.id for e in page1.items] == ids[::-1][:2] and page1.total == 5
    page2 = await services.remediation.page(GUILD, status="open", limit=2,
                                            cursor=page1.next_cursor)
    page3 = await services.remediation.page(GUILD, status="open", limit=2,
                                            cursor=page2.next_cursor)
    assert [e.id for e in page2.items + page3.items] == ids[::-1][2:]
    assert page3.next_cursor is None
    by_sig = await services.remediation.page(GUILD, signature="verify/retries_exhausted/"
                                                              "WriteConflict")
    assert by_sig.total == 5
    assert (await services.remediation.page(OTHER_GUILD)).total == 0


async def test_retry_success_resolves_and_audits(services: ProcessServices) -> None:
    await setup_log_channel(services.db)
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    entry_id = await _dead_letter(services, user)
    outcome = await services.remediation.retry(GUILD, entry_id, STAFF)
    assert outcome.resolved and not outcome.already_applied
    member = await services.transitions.get_member(GUILD, user)
    assert member is not None and member.state == State.VERIFIED
    entry, history = await services.remediation.show(GUILD, entry_id)
    assert entry.status == "resolved" and entry.resolved_by == STAFF
    assert entry.remediation_count == 1 and entry.last_remediated_at is not None
    assert [(h.action, h.outcome, h.actor_id) for h in history] == [("retry", "resolved", STAFF)]
    # dead letter + remediation mirrored to the log channel
    assert await count(services.db, "outbox", "kind = 'mirror'") == 2
    await check_invariants(services.db)


async def test_retry_failure_goes_back_to_open_on_the_same_row(services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    entry_id = await _dead_letter(services, user)
    await services.transitions.apply(cmd(Operation.LEAVE, user))  # verify no longer possible
    # The member changed since: a forced replay (the stale refusal is tested below).
    outcome = await services.remediation.retry(GUILD, entry_id, STAFF, force=True)
    assert not outcome.resolved and "not allowed from state left_guild" in outcome.detail
    assert outcome.entry.status == "open" and outcome.entry.remediation_count == 1
    assert outcome.entry.error_type == "TransitionNotAllowed"
    assert await count(services.db, "dead_letters") == 1
    again = await services.remediation.retry(GUILD, entry_id, STAFF, force=True)
    assert again.entry.remediation_count == 2 and again.entry.id == entry_id


async def test_replay_of_a_write_that_had_committed_is_not_applied_twice(
        services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    entry_id = await _dead_letter(services, user, key="verify-lost-answer")
    # The original write did commit after all (its answer was lost).
    await services.transitions.apply(cmd(Operation.VERIFY, user, key="verify-lost-answer"))
    ledger = await count(services.db, "member_transitions", "user_id = :u", u=user)
    outcome = await services.remediation.retry(GUILD, entry_id, STAFF)
    assert outcome.resolved and outcome.already_applied
    assert await count(services.db, "member_transitions", "user_id = :u", u=user) == ledger


async def test_two_actors_retrying_one_entry_at_once_replay_it_once(
        services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    entry_id = await _dead_letter(services, user)
    results = await asyncio.gather(services.remediation.retry(GUILD, entry_id, STAFF),
                                   services.remediation.retry(GUILD, entry_id, STAFF + 1),
                                   return_exceptions=True)
    resolved = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, AlreadyRetrying | InvalidStatus)]
    assert len(resolved) == 1 and len(refused) == 1, results
    assert await count(services.db, "member_transitions",
                       "user_id = :u AND operation = 'verify'", u=user) == 1
    assert await count(services.db, "remediation_actions") == 1


async def test_resolve_and_dismiss_are_audited_and_dismissed_cannot_be_retried(
        services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    a = await _dead_letter(services, user)
    b = await _dead_letter(services, user)
    resolved = await services.remediation.resolve(GUILD, a, STAFF, "fixed by hand")
    assert resolved.status == "resolved" and resolved.resolution_note == "fixed by hand"
    dismissed = await services.remediation.dismiss(GUILD, b, STAFF, "duplicate")
    assert dismissed.status == "dismissed"
    with pytest.raises(EntryDismissed, match="reopen it"):
        await services.remediation.retry(GUILD, b, STAFF)
    with pytest.raises(InvalidStatus):
        await services.remediation.resolve(GUILD, a, STAFF, "again")
    reopened = await services.remediation.reopen(GUILD, b, STAFF)
    assert reopened.status == "open"
    assert (await services.remediation.retry(GUILD, b, STAFF)).resolved
    actions = await count(services.db, "remediation_actions")
    assert actions == 4  # resolve, dismiss, reopen, retry (refusals write nothing)


async def test_another_guilds_id_is_not_found_and_changes_nothing(
        services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING, OTHER_GUILD)
    foreign = await _dead_letter(services, user, guild=OTHER_GUILD)
    for call in (services.remediation.show(GUILD, foreign),
                 services.remediation.retry(GUILD, foreign, STAFF),
                 services.remediation.resolve(GUILD, foreign, STAFF, "x"),
                 services.remediation.dismiss(GUILD, foreign, STAFF, "x"),
                 services.remediation.reopen(GUILD, foreign, STAFF)):
        with pytest.raises(NotFound, match=f"#{foreign} does not exist in this guild"):
            await call
    entry, history = await services.remediation.show(OTHER_GUILD, foreign)
    assert entry.status == "open" and entry.version == 1 and history == []
    with pytest.raises(NotFound):
        await services.remediation.show(GUILD, 999_999)


@pytest.mark.parametrize("note", [
    "", "   ", "x" * 1001, "y" * 10_000,
    "\u200b\u200b", " \u200d\ufeff ", "\u202e\u2066\u2069",  # invisible only: blank
])
async def test_bad_notes_are_refused_and_write_nothing(
        services: ProcessServices, note: str) -> None:
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    entry_id = await _dead_letter(services, user)
    for action in (services.remediation.resolve, services.remediation.dismiss):
        with pytest.raises(InvalidInput, match="1 to 1000 characters"):
            await action(GUILD, entry_id, STAFF, note)
    entry, history = await services.remediation.show(GUILD, entry_id)
    assert entry.status == "open" and entry.version == 1 and history == []


@pytest.mark.parametrize("limit", [0, -1, 101, 10**9])
async def test_bad_limit_is_a_clear_error(services: ProcessServices, limit: int) -> None:
    with pytest.raises(InvalidInput, match="limit must be between 1 and 100"):
        await services.remediation.page(GUILD, limit=limit)


async def test_bad_filters_and_cursor_are_clear_errors(services: ProcessServices) -> None:
    with pytest.raises(InvalidInput, match="status must be one of"):
        await services.remediation.page(GUILD, status="pending")
    with pytest.raises(InvalidInput, match="operation must be one of"):
        await services.remediation.page(GUILD, operation="explode")
    with pytest.raises(InvalidInput, match="cursor"):
        await services.remediation.page(GUILD, cursor="'; drop table members")


async def test_retry_group_replays_every_open_entry_of_a_signature(
        services: ProcessServices) -> None:
    users = [next_user() for _ in range(12)]
    for user in users:
        await drive(services, user, State.VERIFICATION_PENDING)
        await _dead_letter(services, user)
    await services.transitions.apply(cmd(Operation.LEAVE, users[0]))  # one is stale now
    seen: list[tuple[int, int, int]] = []

    async def progress(done: int, total: int, resolved: int) -> None:
        seen.append((done, total, resolved))

    result = await services.remediation.retry_group(
        GUILD, "verify/retries_exhausted/WriteConflict", STAFF, progress=progress)
    assert (result.total, result.resolved, result.failed, result.stale) == (12, 11, 0, 1)
    assert seen[-1] == (12, 12, 11) and len(seen) == 12
    assert await count(services.db, "member_transitions", "operation = 'verify'") == 11
    # Forced, the stale one is replayed, and fails: its member left.
    forced = await services.remediation.retry_group(
        GUILD, "verify/retries_exhausted/WriteConflict", STAFF, force=True)
    assert (forced.total, forced.resolved, forced.failed, forced.stale) == (1, 0, 1, 0)
    await check_invariants(services.db)


async def _verify_dead_letters(services: ProcessServices, n: int) -> tuple[list[int], list[int]]:
    users = [next_user() for _ in range(n)]
    await asyncio.gather(*(drive(services, u, State.VERIFICATION_PENDING) for u in users))
    return users, [await _dead_letter(services, u) for u in users]


async def test_retry_group_skips_entries_others_act_on_while_it_runs(
        services: ProcessServices) -> None:
    """Entries are claimed CLAIM_BATCH at a time: one dismissed by staff and one claimed by
    another retry after the group started, in batches not yet claimed, are left alone."""
    services.remediation.group_concurrency = 1
    _, ids = await _verify_dead_letters(services, 2 * CLAIM_BATCH + 4)
    later, other = ids[CLAIM_BATCH + 3], ids[2 * CLAIM_BATCH + 1]
    seen: list[int] = []

    async def progress(done: int, total: int, resolved: int) -> None:
        if not seen:  # the first batch is claimed; the others are not
            await services.remediation.dismiss(GUILD, later, STAFF, "noise")
            # another retry, in flight: its claim (the public store's compare-and-set)
            assert await services.stores.dead_letters.claim(
                GUILD, other, STALE_CLAIM_SECONDS) is not None
        seen.append(done)

    result = await services.remediation.retry_group(GUILD, SIGNATURE, STAFF,
                                                    progress=progress)
    assert (result.total, result.resolved, result.failed, result.skipped) == \
        (len(ids), len(ids) - 2, 0, 2)
    assert seen == sorted(set(seen)) and seen[-1] == len(ids)
    async with services.db.autocommit() as conn:
        status: dict[int, str] = dict((await conn.execute(text(
            "SELECT id, status::text FROM dead_letters"))).all())
    assert status[later] == "dismissed" and status[other] == "retrying"
    assert await count(services.db, "member_transitions", "operation = 'verify'") == \
        len(ids) - 2
    await check_invariants(services.db)


async def test_cancelled_retry_group_records_what_it_did_and_gives_back_the_rest(
        services: ProcessServices) -> None:
    """Cancelled mid-batch (the staff member's view went away): the replays done are
    recorded, the one cut short stays claimed (a later retry takes it over), and the claims
    not yet started are open again at once."""
    services.remediation.group_concurrency = 1
    await _verify_dead_letters(services, CLAIM_BATCH)
    # The third replay is held at its read and cancelled there, before writing anything
    # (after the batch's staleness read, one hit per entry).
    reads = services.faults.hits[Point.MEMBERS_READ] + CLAIM_BATCH
    third = services.faults.hold(Point.MEMBERS_READ,
                                 when=lambda hit: hit.number == reads + 3)
    task = asyncio.create_task(services.remediation.retry_group(GUILD, SIGNATURE, STAFF))
    await asyncio.wait_for(third.reached.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with services.db.autocommit() as conn:
        by_status: dict[str, int] = dict((await conn.execute(text(
            "SELECT status::text, count(*) FROM dead_letters GROUP BY 1"))).all())
        cut_short = (await conn.execute(text(
            "SELECT id FROM dead_letters WHERE status = 'retrying'"))).scalar_one()
    assert by_status == {"resolved": 2, "retrying": 1, "open": CLAIM_BATCH - 3}
    assert await count(services.db, "remediation_actions") == 2
    again = await services.remediation.retry_group(GUILD, SIGNATURE, STAFF)
    assert (again.total, again.resolved) == (CLAIM_BATCH - 3, CLAIM_BATCH - 3)
    async with services.db.transaction() as conn:  # the claim grows stale
        await conn.execute(text("UPDATE dead_letters SET updated_at = now() - "
                                "interval '10 minutes' WHERE id = :id"), {"id": cut_short})
    assert (await services.remediation.retry(GUILD, cut_short, STAFF)).resolved
    assert await count(services.db, "member_transitions", "operation = 'verify'") == \
        CLAIM_BATCH
    await check_invariants(services.db)


async def test_stats_counts_by_status_and_signature(services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    a = await _dead_letter(services, user)
    await _dead_letter(services, user)
    await _dead_letter(services, user, op=Operation.REJECT)
    await services.remediation.dismiss(GUILD, a, STAFF, "noise")
    stats = await services.remediation.stats(GUILD)
    assert stats.by_status == {"open": 2, "retrying": 0, "resolved": 0, "dismissed": 1}
    top = {s.signature: (s.open, s.total) for s in stats.by_signature}
    assert top == {"verify/retries_exhausted/WriteConflict": (1, 2),
                   "reject/retries_exhausted/WriteConflict": (1, 1)}
    assert stats.oldest_open_age_seconds is not None and stats.oldest_open_age_seconds >= 0
    assert stats.retention_days == 30


async def test_a_stale_entry_is_not_replayed_unless_forced(services: ProcessServices) -> None:
    """The demo's harm: a leftover `reverify`, recorded while the member was verified, then
    staff reverified and verified the member by hand. Replaying it now would move a
    verified member back to verification_pending. Refused as stale (what changed, nothing
    written, the entry open as it was); forced, it is applied and audited as forced."""
    user = next_user()
    await drive(services, user, State.VERIFIED)
    entry_id = await _dead_letter(services, user, Operation.REVERIFY)
    recorded = await services.transitions.get_member(GUILD, user)
    assert recorded is not None
    for op in (Operation.REVERIFY, Operation.VERIFY):  # staff, by hand
        await services.transitions.apply(cmd(op, user, source=Source.STAFF))
    ledger = await count(services.db, "member_transitions", "user_id = :u", u=user)
    with pytest.raises(StaleEntry) as info:
        await services.remediation.retry(GUILD, entry_id, STAFF)
    stale = info.value
    assert (stale.recorded_state, stale.recorded_version) == ("verified", recorded.version)
    assert (stale.current_state, stale.current_version) == ("verified", recorded.version + 2)
    assert stale.transitions_since == 2
    assert [h.operation for h in stale.recent_transitions] == [Operation.VERIFY,
                                                               Operation.REVERIFY]
    entry, history = await services.remediation.show(GUILD, entry_id)
    assert entry.status == "open" and history == []
    assert await count(services.db, "member_transitions", "user_id = :u", u=user) == ledger
    group = await services.remediation.retry_group(GUILD, entry.signature, STAFF)
    assert (group.stale, group.resolved) == (1, 0)

    forced = await services.remediation.retry(GUILD, entry_id, STAFF, force=True)
    assert forced.resolved
    member = await services.transitions.get_member(GUILD, user)
    assert member is not None and member.state == State.VERIFICATION_PENDING
    _, history = await services.remediation.show(GUILD, entry_id)
    assert history[-1].note is not None and "forced" in history[-1].note


async def test_retry_all_replays_the_oldest_up_to_its_bound_and_says_what_remains(
        services: ProcessServices) -> None:
    """One call replays at most `retry_all_limit` entries, oldest first; the answer counts
    the rest, and the next call continues with them."""
    ids = []
    for _ in range(5):
        user = next_user()
        await drive(services, user, State.VERIFICATION_PENDING)
        ids.append(await _dead_letter(services, user))
    bounded = services.remediation
    bounded.retry_all_limit = 2  # this test's services only (as bench/common.py sets theirs)
    first = await bounded.retry_all(GUILD, STAFF, signature=SIGNATURE)
    assert (first.matched, first.resolved, first.remaining) == (5, 2, 3)
    statuses = [(await services.remediation.get(GUILD, i)).status for i in ids]
    assert statuses == ["resolved", "resolved", "open", "open", "open"]
    second = await bounded.retry_all(GUILD, STAFF)
    assert (second.matched, second.resolved, second.remaining) == (3, 2, 1)
    last = await bounded.retry_all(GUILD, STAFF, operation="verify")
    assert (last.matched, last.resolved, last.remaining) == (1, 1, 0)
    assert await count(services.db, "remediation_actions", "action = 'retry'") == 5
    nothing = await bounded.retry_all(GUILD, STAFF, dry_run=True)
    assert nothing.matched == 0
