"""The outbox worker and its store against a real PostgreSQL, with a recording Discord.

The real discord.py delivery is exercised through the sandbox in tests/bot; here the
claiming, ordering, batching, takeover and failure states are checked with several workers,
and failures of the store's own statements come through the fault seam.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Sequence

import pytest
from sqlalchemy import text

from bot import formatting
from domain.metrics import CountingMetrics
from domain.mirror import remediation_facts, transition_facts
from domain.outbox import (
    TAKEN_OVER,
    Claimed,
    DeliveryError,
    OutboxWorker,
    Receipt,
    WorkerPolicy,
    purge_expired,
)
from domain.persistence.database import Database, is_unavailable
from domain.persistence.dead_letters import DeadLetterStore
from domain.persistence.deliveries import DeliveryStore
from domain.persistence.faults import Faults, Point, connection_dropped
from domain.persistence.outbox import OutboxStore
from domain.vocabulary import OutboxKind
from tests.helpers import GUILD, count


class RecordingDiscord:
    """A Deliverer that batches like the Discord edge (bot.formatting) and records what it
    sends, like Discord where it matters: a repeated nonce returns the first message."""

    def __init__(self) -> None:
        self.messages: dict[int, list[list[str]]] = defaultdict(list)  # embed descriptions
        self.by_nonce: dict[str, int] = {}
        self.roles: list[tuple[int, int, str]] = []
        self.fail_next: list[DeliveryError] = []
        self.posts = 0

    def max_batch(self, kind: OutboxKind) -> int:
        return formatting.max_batch(kind)

    def take(self, rows: Sequence[Claimed]) -> int:
        return formatting.take(rows)

    async def deliver(self, rows: Sequence[Claimed]) -> Receipt:
        await asyncio.sleep(0)
        if self.fail_next:
            raise self.fail_next.pop(0)
        head = rows[0]
        if head.kind is OutboxKind.ROLE_SYNC:
            self.roles.append((int(head.payload["user_id"]), int(head.payload["role_id"]),
                               str(head.payload["action"])))
            return Receipt(204)
        post = formatting.mirror_post(rows)
        assert post.channel_id is not None
        assert post.descriptions and formatting.fits_one_message(post.descriptions)
        self.posts += 1
        if post.nonce not in self.by_nonce:
            self.messages[post.channel_id].append(post.descriptions)
            self.by_nonce[post.nonce] = len(self.by_nonce) + 1
        return Receipt(200, self.by_nonce[post.nonce])

    def lines(self, channel_id: int) -> list[str]:
        return [line for m in self.messages[channel_id] for d in m for line in d.split("\n")]


def _line(i: int) -> str:
    return f"record {i:05d} " + "x" * 60


async def _enqueue(db: Database, channel: int, n: int, start: int = 0) -> None:
    """Mirror rows of a channel's lane, each with its line (how rows queued before the
    outbox kept facts look; any line will do for the worker)."""
    async with db.transaction() as conn:
        for i in range(start, start + n):
            await conn.execute(text(
                "INSERT INTO outbox (guild_id, kind, channel_id, lane, payload) "
                "VALUES (:g, 'mirror', :c, :lane, CAST(:p AS jsonb))"),
                {"g": GUILD, "c": channel, "lane": f"channel:{channel}",
                 "p": json.dumps({"line": _line(i), "record": "remediation"})})


def _worker(db: Database, discord: RecordingDiscord, faults: Faults | None = None,
            **policy: float) -> OutboxWorker:
    return OutboxWorker(OutboxStore(db, faults), discord, CountingMetrics(),
                        WorkerPolicy(**policy))  # type: ignore[arg-type]


async def _drain(*workers: OutboxWorker) -> None:
    while True:
        handled = await asyncio.gather(*(w.run_once() for w in workers))
        if not any(handled):
            return


async def _until_unlocked(db: Database) -> None:
    """Wait for claims to expire, as the database sees it."""
    async with db.autocommit() as conn:
        while (await conn.execute(text(
                "SELECT count(*) FROM outbox WHERE locked_until > now()"))).scalar_one():
            await asyncio.sleep(0.05)


async def test_three_workers_deliver_every_record_once_in_order_batched(clean_db: Database
                                                                          ) -> None:
    discord = RecordingDiscord()
    for channel in (501, 502, 503):
        await _enqueue(clean_db, channel, 200)
    workers = [_worker(clean_db, discord) for _ in range(3)]
    await _drain(*workers)
    for channel in (501, 502, 503):
        lines = discord.lines(channel)
        assert lines == [_line(i) for i in range(200)]
        # batched, not one per record: 81 lines of 73 characters fill one message's embeds
        assert len(discord.messages[channel]) == 3
    assert await count(clean_db, "outbox", "status = 'delivered'") == 600
    assert await count(clean_db, "outbox_attempts") == 600


async def test_mirror_facts_are_queued_by_level_and_rendered_when_delivered(
        clean_db: Database) -> None:
    store = OutboxStore(clean_db)
    async with clean_db.transaction() as conn:
        await conn.execute(text(
            "INSERT INTO guild_settings (guild_id, log_channel_id, mirror_level) "
            "VALUES (:g, 901, 'remediation')"), {"g": GUILD})
    entry = {"id": 7, "user_id": 5, "operation": "verify", "from_state": None,
             "to_state": "verified"}
    transition = transition_facts(5, "join", None, "joined", "bot", None)
    remediation = remediation_facts("resolve", 6, entry, "resolved", None, "done *by hand*")
    # No settings, or a level without transitions: not queued.
    await store.enqueue_mirror([(GUILD, transition), (GUILD, remediation),
                                (GUILD + 1, remediation)])
    assert await count(clean_db, "outbox") == 1
    discord = RecordingDiscord()
    await _drain(_worker(clean_db, discord))
    assert discord.lines(901) == [
        "🛠️ <@6> resolved #7 (`verify` for <@5>, new → verified): resolved — "
        "“done \\*by hand\\*”"]


async def test_role_changes_of_a_member_go_one_by_one_in_order(clean_db: Database) -> None:
    async with clean_db.transaction() as conn:
        for action in ("add", "remove", "add"):
            await conn.execute(text(
                "INSERT INTO outbox (guild_id, kind, lane, payload) VALUES (:g, 'role_sync', "
                "'member:1:5', CAST(:p AS jsonb))"),
                {"g": GUILD, "p": json.dumps({"user_id": 5, "role_id": 9, "action": action})})
    discord = RecordingDiscord()
    worker = _worker(clean_db, discord)
    assert await worker.run_once() == 1  # a lane's rows wait for the one before them
    await _drain(worker)
    assert discord.roles == [(5, 9, "add"), (5, 9, "remove"), (5, 9, "add")]
    assert await count(clean_db, "outbox", "status = 'delivered'") == 3


async def test_a_crashed_workers_claim_is_taken_over_and_not_posted_twice(
        clean_db: Database) -> None:
    discord = RecordingDiscord()
    await _enqueue(clean_db, 601, 20)  # one message's worth
    crashed = _worker(clean_db, discord, lock_seconds=0.2)
    batches = await crashed.claim()
    # It posted, then died before recording the delivery.
    head = batches[0]
    await discord.deliver(head)
    survivor = _worker(clean_db, discord, lock_seconds=30)
    assert await survivor.run_once() == 0  # the claim has not expired yet
    await _until_unlocked(clean_db)
    await _drain(survivor)
    assert discord.lines(601) == [_line(i) for i in range(20)]
    assert discord.posts == 2 and len(discord.messages[601]) == 1
    # the crashed worker's late record does not overwrite the survivor's
    assert await crashed.deliver(head) == TAKEN_OVER


async def test_a_delivery_whose_record_was_lost_is_resent_with_the_same_nonce(
        clean_db: Database) -> None:
    """The post reached Discord, then the connection dropped under the record: the rows stay
    claimed, and once the claim expires the same batch goes again with the same nonce."""
    discord = RecordingDiscord()
    faults = Faults()
    faults.drop_connection(Point.OUTBOX_RECORD, times=1)
    await _enqueue(clean_db, 602, 20)
    worker = _worker(clean_db, discord, faults, lock_seconds=0.5)
    with pytest.raises(Exception) as lost:
        await worker.run_once()
    assert is_unavailable(lost.value)
    assert await count(clean_db, "outbox", "status = 'delivering'") == 20
    assert await count(clean_db, "outbox_attempts") == 0
    await _until_unlocked(clean_db)
    await _drain(worker)
    assert discord.posts == 2 and len(discord.messages[602]) == 1
    assert discord.lines(602) == [_line(i) for i in range(20)]
    assert await count(clean_db, "outbox", "status = 'delivered' AND attempts = 2") == 20
    assert faults.hits[Point.OUTBOX_RECORD] == 2


async def test_a_claim_that_fails_leaves_every_row_to_the_next_round(
        clean_db: Database) -> None:
    discord = RecordingDiscord()
    faults = Faults()
    faults.fail(Point.OUTBOX_CLAIM, connection_dropped, times=1)
    await _enqueue(clean_db, 603, 5)
    worker = _worker(clean_db, discord, faults)
    with pytest.raises(Exception) as failed:
        await worker.run_once()
    assert is_unavailable(failed.value)
    assert await count(clean_db, "outbox", "status = 'pending' AND attempts = 0") == 5
    await _drain(worker)
    assert discord.lines(603) == [_line(i) for i in range(5)]


async def test_missing_permission_dead_letters_the_lane_without_blocking_others(
        clean_db: Database) -> None:
    discord = RecordingDiscord()
    await _enqueue(clean_db, 701, 5)
    await _enqueue(clean_db, 702, 5)
    discord.fail_next = [DeliveryError("Missing Permissions (50013)", status=403,
                                       retryable=False, whole_lane=True)]
    await _drain(_worker(clean_db, discord))
    dead = await count(clean_db, "outbox", "status = 'dead_lettered'")
    delivered = await count(clean_db, "outbox", "status = 'delivered'")
    assert dead == 5 and delivered == 5
    async with clean_db.autocommit() as conn:
        row = (await conn.execute(text(
            "SELECT http_status, retryable, error_summary FROM outbox_attempts "
            "WHERE http_status = 403 LIMIT 1"))).one()
    assert row.retryable is False and "50013" in row.error_summary


async def test_a_row_refused_on_its_own_is_dead_lettered_alone(clean_db: Database) -> None:
    discord = RecordingDiscord()
    await _enqueue(clean_db, 704, 1)
    worker = _worker(clean_db, discord)
    [batch] = await worker.claim()
    await _enqueue(clean_db, 704, 2, start=1)  # queued behind it meanwhile
    # A failure of this row, not of the channel (say, facts that cannot be rendered).
    discord.fail_next = [DeliveryError("unreadable mirror record", retryable=False)]
    assert await worker.deliver(batch) == "dead_lettered"
    await _drain(worker)
    assert discord.lines(704) == [_line(1), _line(2)]  # the lane went on
    assert await count(clean_db, "outbox", "status = 'dead_lettered'") == 1


async def test_retryable_failures_back_off_then_fail_after_max_attempts(
        clean_db: Database) -> None:
    discord = RecordingDiscord()
    await _enqueue(clean_db, 801, 1)
    worker = _worker(clean_db, discord, max_attempts=2, backoff_base=0.05, backoff_max=0.05)
    discord.fail_next = [DeliveryError("500 Internal Server Error", status=500),
                         DeliveryError("500 Internal Server Error", status=500)]
    assert await worker.run_once() == 1
    async with clean_db.autocommit() as conn:
        row = (await conn.execute(text(
            "SELECT status, next_attempt_at > now() AS later FROM outbox"))).one()
    assert row.status == "retry_scheduled" and row.later
    async with clean_db.autocommit() as conn:
        while (await conn.execute(text(
                "SELECT count(*) FROM outbox WHERE next_attempt_at > now()"))).scalar_one():
            await asyncio.sleep(0.02)
    await worker.run_once()
    assert await count(clean_db, "outbox", "status = 'failed'") == 1
    assert await count(clean_db, "outbox_attempts") == 2


async def test_the_summary_reports_failures_until_staff_retry_them(
        clean_db: Database) -> None:
    store = DeliveryStore(clean_db)
    assert (await store.summary(GUILD)).pending == 0  # not set up: nothing
    async with clean_db.transaction() as conn:
        await conn.execute(text(
            "INSERT INTO guild_settings (guild_id, log_channel_id, mirror_level, updated_at) "
            "VALUES (:g, 904, 'dead_letters', now() - interval '1 minute')"), {"g": GUILD})
    await _enqueue(clean_db, 904, 2)
    discord = RecordingDiscord()
    discord.fail_next = [DeliveryError("404 Not Found (code 10003): Unknown Channel",
                                       status=404, retryable=False, whole_lane=True)]
    await _enqueue(clean_db, 905, 1)  # another lane of the guild, still waiting
    async with clean_db.transaction() as conn:
        await conn.execute(text("UPDATE outbox SET next_attempt_at = now() + interval '1 hour' "
                                "WHERE channel_id = 905"))
    await _drain(_worker(clean_db, discord))
    health = await store.summary(GUILD)
    assert (health.pending, health.failed) == (1, 2)
    assert health.newest_error == "404 Not Found (code 10003): Unknown Channel"
    async with clean_db.transaction() as conn:  # /lifeline setup again: still failed
        await conn.execute(text("UPDATE guild_settings SET updated_at = now() "
                                "WHERE guild_id = :g"), {"g": GUILD})
    assert await store.summary(GUILD) == health


async def test_retention_purges_closed_entries_but_keeps_the_audit(clean_db: Database) -> None:
    async with clean_db.transaction() as conn:
        await conn.execute(text(
            """INSERT INTO dead_letters (guild_id, user_id, operation, reason_code, error_type,
                   error_message, attempts, source, idempotency_key, correlation_id, payload,
                   signature, status, updated_at)
               SELECT :g, 5, 'verify', 'retries_exhausted', 'E', 'm', 1, 'bot', 'k' || i, 'c',
                      '{}', 's', CAST(CASE WHEN i % 2 = 0 THEN 'resolved' ELSE 'open' END
                                       AS dead_letter_status),
                      now() - interval '40 days'
               FROM generate_series(1, 30) AS i"""), {"g": GUILD})
        await conn.execute(text(
            "INSERT INTO remediation_actions (guild_id, target_id, dead_letter_id, actor_id, "
            "source, action, outcome, status_before, status_after, correlation_id) "
            "VALUES (:g, 2, 2, 1, 'staff', 'resolve', 'resolved', 'open', 'resolved', 'c')"),
            {"g": GUILD})
    store, dead_letters = OutboxStore(clean_db), DeadLetterStore(clean_db)
    purged = await purge_expired(store, dead_letters, 30, batch=4)
    assert purged["dead_letters"] == 15
    assert await count(clean_db, "dead_letters", "status = 'open'") == 15
    assert await count(clean_db, "remediation_actions") == 1
    assert (await purge_expired(store, dead_letters, 0))["dead_letters"] == 0


async def test_a_deliverer_that_cannot_size_a_batch_sends_the_head_alone(
        clean_db: Database) -> None:
    """Sizing runs inside the claim: if the edge raises there, the round still claims (the
    head alone), instead of every round failing on the same row."""
    class Broken(RecordingDiscord):
        def take(self, rows: Sequence[Claimed]) -> int:
            raise RuntimeError("a formatting bug")

    discord = Broken()
    await _enqueue(clean_db, 77, 3)
    worker = _worker(clean_db, discord)
    handled = [await worker.run_once() for _ in range(3)]
    assert handled == [1, 1, 1]
    assert discord.lines(77) == [_line(0), _line(1), _line(2)]


async def test_a_claim_does_not_wait_for_rows_another_worker_holds(clean_db: Database) -> None:
    """Workers never wait on each other's claims: while another worker's claim transaction
    holds one lane's rows, a claim returns at once with the other lanes."""
    discord = RecordingDiscord()
    await _enqueue(clean_db, 601, 3)
    await _enqueue(clean_db, 602, 3)
    async with clean_db.transaction() as other:
        held = (await other.execute(text(
            "SELECT id FROM outbox WHERE lane = 'channel:601' ORDER BY id FOR UPDATE"))).all()
        assert len(held) == 3
        started = asyncio.get_running_loop().time()
        batches = await asyncio.wait_for(_worker(clean_db, discord).claim(), timeout=5)
        waited = asyncio.get_running_loop().time() - started
    assert [[row.lane for row in batch] for batch in batches] == [["channel:602"] * 3]
    assert waited < 1.0, f"the claim waited {waited:.2f} s for another worker's rows"
