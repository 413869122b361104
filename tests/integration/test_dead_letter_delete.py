"""Deleting an entry while others replay it: each entry ends deleted or replayed (or both,
in that order), never half; the audit says what happened and the counters stay exact."""

from __future__ import annotations

import asyncio

import pytest

from domain.errors import AlreadyRetrying, NotFound, TransitionDeadLettered
from domain.lifecycle import Operation, Source, State
from tests.helpers import GUILD, STAFF, cmd, count, drive, next_user
from tests.integration.test_dead_letter_counts import db_drift
from tests.wiring import ProcessServices


async def _entry(services: ProcessServices) -> int:
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    write = cmd(Operation.VERIFY, user, source=Source.API)
    services.faults.lose_cas(times=services.settings.transition_max_attempts,
                             when=lambda hit: hit.key == write.idempotency_key)
    with pytest.raises(TransitionDeadLettered) as info:
        await services.transitions.apply(write)
    return info.value.dead_letter_id


async def test_delete_racing_retries_leaves_each_entry_whole(
        services: ProcessServices) -> None:
    ids = [await _entry(services) for _ in range(12)]
    remediation = services.remediation

    async def delete(entry: int) -> str:
        try:
            await remediation.delete(GUILD, entry, STAFF, "race")
            return "deleted"
        except AlreadyRetrying:
            return "refused"

    async def retry(entry: int) -> str:
        try:
            outcome = await remediation.retry(GUILD, entry, STAFF)
            return "resolved" if outcome.resolved else "failed"
        except NotFound:
            return "gone"

    results = await asyncio.gather(*(asyncio.gather(delete(e), retry(e)) for e in ids))
    for entry, (deleted, retried) in zip(ids, results, strict=True):
        # Deleted first: the retry finds nothing. Claimed first: the delete is refused
        # (or, once the replay finished, deletes the resolved entry).
        assert (deleted, retried) in {("deleted", "gone"), ("refused", "resolved"),
                                      ("deleted", "resolved")}, (entry, deleted, retried)
        actions = await count(services.db, "remediation_actions",
                              "dead_letter_id = :id AND action = 'delete'", id=entry)
        assert actions == (1 if deleted == "deleted" else 0)
        replays = await count(services.db, "remediation_actions",
                              "dead_letter_id = :id AND action = 'retry'", id=entry)
        assert replays == (1 if retried == "resolved" else 0)
        left = await count(services.db, "dead_letters", "id = :id", id=entry)
        assert left == (0 if deleted == "deleted" else 1)
    assert await db_drift(services.db) == []
