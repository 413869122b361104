"""Log-channel lines go out in the order their records were committed, and once their channel
works again.

Ids are taken before commit, and a worker delivers a lane in id order: if a transaction
holding a smaller id could commit after one holding a larger id, the worker would already
have posted the larger one (`python -m bench --only mirror` once counted one record out of
order). A mirror row takes its id under its lane's lock, held until commit (migration 0003),
so the next writer of the lane takes its id only after the earlier one committed.
"""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import text

from domain.metrics import CountingMetrics
from domain.outbox import DeliveryError, OutboxWorker, WorkerPolicy
from domain.persistence.database import Database
from domain.persistence.outbox import OutboxStore
from domain.vocabulary import DeliveryCause
from tests.bot.world import eventually
from tests.helpers import GUILD
from tests.integration.test_outbox import RecordingDiscord

INSERT = text("INSERT INTO outbox (guild_id, kind, channel_id, lane, payload) "
              "VALUES (:g, 'mirror', :c, :lane, CAST(:p AS jsonb)) RETURNING id")


def _worker(db: Database, discord: RecordingDiscord) -> OutboxWorker:
    return OutboxWorker(OutboxStore(db), discord, CountingMetrics(), WorkerPolicy())


async def _drain(worker: OutboxWorker) -> None:
    while await worker.run_once():
        pass


def _row(line: str, channel: int = 501) -> dict[str, object]:
    return {"g": GUILD, "c": channel, "lane": f"channel:{channel}",
            "p": json.dumps({"line": line, "record": "remediation"})}


async def _waiting_for_a_lane(db: Database) -> int:
    async with db.autocommit() as conn:
        return int((await conn.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 7301 "
            "AND NOT granted"))).scalar_one())


async def test_a_line_queued_while_an_earlier_one_is_uncommitted_goes_out_after_it(
        clean_db: Database) -> None:
    discord = RecordingDiscord()
    worker = _worker(clean_db, discord)

    async def second_writer() -> int:
        async with clean_db.transaction() as conn:
            return int((await conn.execute(INSERT, _row("queued second"))).scalar_one())

    async with clean_db.transaction() as first:
        early = (await first.execute(INSERT, _row("queued first"))).scalar_one()
        second = asyncio.create_task(second_writer())
        # The race: the second writer is there before the first one committed; it waits
        # for the lane instead of committing a row the worker could post first.
        await eventually(lambda: _waiting_for_a_lane(clean_db), what="the second writer")
        assert not second.done()
        assert await worker.run_once() == 0
        # Another channel's lane is not held up.
        async with clean_db.transaction() as other:
            await other.execute(INSERT, _row("another channel", channel=502))
        assert await worker.run_once() == 1
    late = await second
    assert late > early
    await _drain(worker)
    assert discord.lines(501) == ["queued first", "queued second"]
    assert discord.lines(502) == ["another channel"]


async def test_a_writer_that_rolls_back_releases_the_lane(clean_db: Database) -> None:
    discord = RecordingDiscord()
    worker = _worker(clean_db, discord)
    async with clean_db.engine.connect() as conn:
        tx = await conn.begin()
        await conn.execute(INSERT, _row("never committed"))
        await tx.rollback()
    async with clean_db.transaction() as conn:
        await conn.execute(INSERT, _row("committed"))
    await _drain(worker)
    assert discord.lines(501) == ["committed"]


async def _statuses(db: Database) -> dict[int, str]:
    async with db.autocommit() as conn:
        return {r.id: r.status for r in (await conn.execute(text(
            "SELECT id, status::text AS status FROM outbox ORDER BY id"))).all()}


async def test_lines_a_channel_refused_go_out_in_order_once_it_works_again(
        clean_db: Database) -> None:
    """Nobody retries them: the worker tries a refused lane again every
    `line_probe_seconds` (0 here: every round) and, while the channel still refuses, the
    lines stay failed; once it takes them, they go out in their order."""
    async with clean_db.transaction() as conn:
        await conn.execute(text("INSERT INTO guild_settings (guild_id, log_channel_id) "
                                "VALUES (:g, 501)"), {"g": GUILD})
    discord = RecordingDiscord()
    refused = [DeliveryError("403 Forbidden (code 50013): Missing Permissions", status=403,
                             retryable=False, whole_lane=True, code=50013,
                             cause=DeliveryCause.MISSING_EMBED_LINKS) for _ in range(2)]
    discord.fail_next = list(refused)
    worker = OutboxWorker(OutboxStore(clean_db), discord, CountingMetrics(),
                          WorkerPolicy(line_probe_seconds=0.001))
    for i in range(3):
        async with clean_db.transaction() as conn:
            await conn.execute(INSERT, _row(f"line {i}"))
    await worker.run_once()  # refused: the whole lane fails with it
    assert set((await _statuses(clean_db)).values()) == {"dead_lettered"}
    async with clean_db.transaction() as conn:  # the probe waits a period after a failure
        await conn.execute(text("UPDATE outbox SET updated_at = now() - interval '1 hour'"))
    await worker.run_once()  # probed: put back in line (the next round sends them)
    await worker.run_once()  # still refused
    assert set((await _statuses(clean_db)).values()) == {"dead_lettered"}
    assert discord.lines(501) == []
    async with clean_db.transaction() as conn:
        await conn.execute(text("UPDATE outbox SET updated_at = now() - interval '1 hour'"))
    await worker.run_once()  # probed again
    await _drain(worker)
    assert discord.lines(501) == ["line 0", "line 1", "line 2"]
    assert set((await _statuses(clean_db)).values()) == {"delivered"}


async def test_a_line_refused_round_after_round_keeps_only_its_newest_attempts(
        clean_db: Database) -> None:
    """Each re-queue of a line the channel still refuses trims its history to the newest
    `line_probe_kept_attempts`: a channel broken for days does not grow it without bound."""
    async with clean_db.transaction() as conn:
        await conn.execute(text("INSERT INTO guild_settings (guild_id, log_channel_id) "
                                "VALUES (:g, 501)"), {"g": GUILD})
        await conn.execute(INSERT, _row("line"))
    discord = RecordingDiscord()
    worker = OutboxWorker(OutboxStore(clean_db), discord, CountingMetrics(),
                          WorkerPolicy(line_probe_seconds=0.001, line_probe_kept_attempts=2))
    newest = []

    async def age() -> None:  # the probe leaves a lane alone a while after a failure
        async with clean_db.transaction() as conn:
            await conn.execute(text(
                "UPDATE outbox SET updated_at = now() - interval '1 hour'"))
    for round_ in range(5):
        if round_:
            await age()
            await worker.run_once()  # probed: back in line (the next round sends it)
        discord.fail_next = [DeliveryError(
            "403 Forbidden (code 50013): Missing Permissions", status=403, retryable=False,
            whole_lane=True, code=50013, cause=DeliveryCause.MISSING_EMBED_LINKS)]
        await worker.run_once()  # refused again
        async with clean_db.autocommit() as conn:
            newest.append((await conn.execute(text(
                "SELECT max(id) FROM outbox_attempts"))).scalar_one())
    await age()
    await worker.run_once()  # probed: back in line, its history trimmed
    async with clean_db.autocommit() as conn:
        kept = (await conn.execute(text("SELECT id FROM outbox_attempts ORDER BY id"))
                ).scalars().all()
    assert list(kept) == newest[-2:] and len(set(newest)) == 5
    assert set((await _statuses(clean_db)).values()) == {"pending"}


async def test_a_line_this_version_cannot_read_is_not_probed(clean_db: Database) -> None:
    async with clean_db.transaction() as conn:
        await conn.execute(text("INSERT INTO guild_settings (guild_id, log_channel_id) "
                                "VALUES (:g, 501)"), {"g": GUILD})
        await conn.execute(INSERT, _row("x"))
        await conn.execute(text(
            "UPDATE outbox SET status = 'dead_lettered', cause = 'unreadable_record', "
            "updated_at = now() - interval '1 hour'"))
    worker = OutboxWorker(OutboxStore(clean_db), RecordingDiscord(), CountingMetrics(),
                          WorkerPolicy(line_probe_seconds=0.001))
    await _drain(worker)
    await worker.run_once()
    assert set((await _statuses(clean_db)).values()) == {"dead_lettered"}
