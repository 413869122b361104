"""The ingest pipeline on real PostgreSQL: retries that do not dead-letter twice, a damaged
event that does not stop its worker, and reconcile's work that does not hold the log back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from domain.ingest.events import EventKind, MemberEvent
from domain.ingest.log import IngestLog
from domain.ingest.pipeline import Ingestion
from domain.lifecycle import State
from domain.member_sync import MemberFlags
from domain.persistence.faults import Point, connection_dropped
from tests.helpers import GUILD, count, drive, next_user
from tests.ingest.test_applier import DONE, Flags
from tests.wiring import ProcessServices


class Reconciles:
    def __init__(self) -> None:
        self.guilds: list[int] = []

    async def __call__(self, guild_id: int) -> int:
        self.guilds.append(guild_id)
        return 0


@pytest.fixture
async def pipeline(services: ProcessServices, tmp_path: Path
                   ) -> AsyncIterator[tuple[Ingestion, Flags, Reconciles]]:
    view, reconciles = Flags({}), Reconciles()
    ingestion = Ingestion(IngestLog(tmp_path, 1 << 20), services.services.batches, view,
                          workers=2, reconcile=reconciles, retry_initial=0.01)
    await ingestion.start()
    try:
        yield ingestion, view, reconciles
    finally:
        await ingestion.stop()


def event(kind: EventKind, user: int, **kw: object) -> MemberEvent:
    if kind is EventKind.UPDATE:
        return MemberEvent(kind, GUILD, user, time.time(), **kw)  # type: ignore[arg-type]
    return MemberEvent.membership(kind, GUILD, user, time.time(), joined_at_ms=7)


async def test_a_batch_retried_after_the_database_failed_mid_way_dead_letters_nothing_twice(
        services: ProcessServices, pipeline: tuple[Ingestion, Flags, Reconciles]) -> None:
    """One batch: an unban that does not apply (of a member who is present: a dead letter)
    and a member who joins and onboards. The connection drops at the batch's second read,
    after the dead letter was written: the worker applies the same batch again, and it
    goes on where it stopped."""
    ingestion, view, _ = pipeline
    stranger = next_user()
    await drive(services, stranger, State.JOINED)
    joiner = next(u for u in iter(next_user, None)
                  if ingestion.partition_of(GUILD, u) == ingestion.partition_of(GUILD, stranger))
    view.flags[joiner] = DONE
    gate = services.faults.hold(Point.MEMBERS_READ, when=lambda hit: hit.user_id == stranger)
    # The stranger's read is held (a batch of the first event alone), so the rest gathers
    # into the next batch: the unban first, then the joiner's events.
    await ingestion.submit(event(EventKind.UPDATE, stranger))
    await asyncio.wait_for(gate.reached.wait(), 10)
    await ingestion.submit(event(EventKind.UNBAN, stranger))
    await ingestion.submit(event(EventKind.JOIN, joiner))
    await ingestion.submit(event(EventKind.UPDATE, joiner))
    # The second batch's second round (the joiner's sync: no key to read any more) drops
    # the connection.
    dropped = services.faults.fail(Point.MEMBERS_READ, connection_dropped, times=1,
                                   when=lambda hit: hit.user_id == joiner and hit.key is None)
    gate.release()
    await ingestion.wait_idle()
    assert dropped.fired == 1
    member = await services.transitions.get_member(GUILD, joiner)
    assert member is not None and member.state == State.RULES_ACCEPTED
    assert await count(services.db, "dead_letters", "user_id = :u", u=stranger) == 1


async def test_a_damaged_event_is_counted_its_guild_reconciled_and_the_worker_goes_on(
        services: ProcessServices, pipeline: tuple[Ingestion, Flags, Reconciles]) -> None:
    ingestion, _, reconciles = pipeline
    damaged, fine = next_user(), next_user()
    await ingestion.submit(MemberEvent(EventKind.JOIN, GUILD, damaged, time.time(), key=""))
    await ingestion.submit(event(EventKind.JOIN, fine))
    await ingestion.wait_idle()
    assert ingestion.status().failed == 1 and reconciles.guilds == [GUILD]
    assert await services.transitions.get_member(GUILD, damaged) is None
    assert await services.transitions.get_member(GUILD, fine) is not None
    assert ingestion.log.committed == ingestion.log.end  # nothing held back


async def test_reconciles_work_does_not_hold_the_logs_committed_position(
        services: ProcessServices, pipeline: tuple[Ingestion, Flags, Reconciles]) -> None:
    """A reconcile sync is held at the database on one worker; an event logged after it on
    the other worker is applied, and the log's committed position moves past it (the
    reconcile item is not in the log: a crash derives it from Discord again)."""
    ingestion, view, _ = pipeline
    synced = next_user()
    logged = next(u for u in iter(next_user, None)
                  if ingestion.partition_of(GUILD, u) != ingestion.partition_of(GUILD, synced))
    view.flags[synced] = MemberFlags()
    gate = services.faults.hold(Point.MEMBERS_READ, when=lambda hit: hit.user_id == synced)
    ingestion.sync_members(GUILD, [synced], "reconcile")
    await asyncio.wait_for(gate.reached.wait(), 10)
    await ingestion.submit(event(EventKind.JOIN, logged))
    while await services.transitions.get_member(GUILD, logged) is None:
        await asyncio.sleep(0.01)
    for _ in range(100):
        if ingestion.log.committed == ingestion.log.end:
            break
        await asyncio.sleep(0.01)
    assert ingestion.log.committed == ingestion.log.end > 0
    assert ingestion.status().backlog == 1  # the reconcile sync, still held
    gate.release()
    await ingestion.wait_idle()
    assert await services.transitions.get_member(GUILD, synced) is not None
