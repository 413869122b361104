"""The outbox worker against a real PostgreSQL, with a recording Discord port.

The real discord.py delivery is exercised through the sandbox in tests/bot; here the
claiming, ordering, batching, takeover and failure states are checked with several workers.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import text

from domain.metrics import CountingMetrics
from domain.outbox import (
    DeliveryError,
    OutboxWorker,
    Receipt,
    WorkerPolicy,
    fits_one_message,
    purge_expired,
)
from domain.persistence.database import Database
from tests.helpers import GUILD, count


class RecordingDiscord:
    """Behaves like Discord where it matters: a repeated nonce returns the first message."""

    def __init__(self) -> None:
        self.messages: dict[int, list[list[str]]] = defaultdict(list)  # embed descriptions
        self.by_nonce: dict[str, int] = {}
        self.roles: list[tuple[int, int, str]] = []
        self.fail_next: list[DeliveryError] = []
        self.posts = 0

    async def post_embeds(self, channel_id: int, descriptions: Sequence[str],
                          nonce: str) -> Receipt:
        await asyncio.sleep(0)
        if self.fail_next:
            raise self.fail_next.pop(0)
        assert descriptions and fits_one_message(descriptions)
        self.posts += 1
        if nonce in self.by_nonce:
            return Receipt(200, self.by_nonce[nonce])
        self.messages[channel_id].append(list(descriptions))
        self.by_nonce[nonce] = len(self.by_nonce) + 1
        return Receipt(200, self.by_nonce[nonce])

    async def sync_role(self, guild_id: int, user_id: int, role_id: int, action: str) -> Receipt:
        self.roles.append((user_id, role_id, action))
        return Receipt(204)

    def lines(self, channel_id: int) -> list[str]:
        return [line for m in self.messages[channel_id] for d in m for line in d.split("\n")]


async def _enqueue(db: Database, channel: int, n: int, start: int = 0, width: int = 60) -> None:
    async with db.transaction() as conn:
        for i in range(start, start + n):
            line = f"record {i:05d} " + "x" * width
            await conn.execute(text(
                "INSERT INTO outbox (guild_id, kind, channel_id, lane, payload) "
                "VALUES (:g, 'mirror', :c, :lane, CAST(:p AS jsonb))"),
                {"g": GUILD, "c": channel, "lane": f"channel:{channel}",
                 "p": json.dumps({"line": line, "record": "remediation"})})


def _worker(db: Database, discord: RecordingDiscord, **policy: float) -> OutboxWorker:
    return OutboxWorker(db, discord, CountingMetrics(), WorkerPolicy(**policy))  # type: ignore[arg-type]


async def _drain(*workers: OutboxWorker) -> None:
    while True:
        handled = await asyncio.gather(*(w.run_once() for w in workers))
        if not any(handled):
            return


async def test_three_workers_deliver_every_record_once_in_order_batched(clean_db: Database
                                                                          ) -> None:
    discord = RecordingDiscord()
    for channel in (501, 502, 503):
        await _enqueue(clean_db, channel, 200)
    workers = [_worker(clean_db, discord) for _ in range(3)]
    await _drain(*workers)
    for channel in (501, 502, 503):
        lines = discord.lines(channel)
        assert lines == [f"record {i:05d} " + "x" * 60 for i in range(200)]
        # batched, not one per record: 81 lines of 73 characters fill one message's embeds
        assert len(discord.messages[channel]) == 3
    assert await count(clean_db, "outbox", "status = 'delivered'") == 600
    assert await count(clean_db, "outbox_attempts") == 600


async def test_a_crashed_workers_claim_is_taken_over_and_not_posted_twice(
        clean_db: Database) -> None:
    discord = RecordingDiscord()
    await _enqueue(clean_db, 601, 20)  # one message's worth
    crashed = _worker(clean_db, discord, lock_seconds=0.2)
    batches = await crashed.claim()
    # It posted, then died before recording the delivery.
    head = batches[0]
    await discord.post_embeds(601, ["\n".join(str(r.payload["line"]) for r in head)],
                              str(head[0].id))
    survivor = _worker(clean_db, discord, lock_seconds=30)
    assert await survivor.run_once() == 0  # the claim has not expired yet
    async with clean_db.autocommit() as conn:  # wait for the expiry the database reports
        while (await conn.execute(text(
                "SELECT count(*) FROM outbox WHERE locked_until > now()"))).scalar_one():
            await asyncio.sleep(0.05)
    await _drain(survivor)
    assert discord.lines(601) == [f"record {i:05d} " + "x" * 60 for i in range(20)]
    assert discord.posts == 2 and len(discord.messages[601]) == 1
    # the crashed worker's late record does not overwrite the survivor's
    assert await crashed.deliver(head) == "taken_over"


async def test_missing_permission_dead_letters_the_lane_without_blocking_others(
        clean_db: Database) -> None:
    discord = RecordingDiscord()
    await _enqueue(clean_db, 701, 5)
    await _enqueue(clean_db, 702, 5)
    discord.fail_next = [DeliveryError("Missing Permissions (50013)", status=403,
                                       retryable=False)]
    await _drain(_worker(clean_db, discord))
    dead = await count(clean_db, "outbox", "status = 'dead_lettered'")
    delivered = await count(clean_db, "outbox", "status = 'delivered'")
    assert dead == 5 and delivered == 5
    async with clean_db.autocommit() as conn:
        row = (await conn.execute(text(
            "SELECT http_status, retryable, error_summary FROM outbox_attempts "
            "WHERE http_status = 403 LIMIT 1"))).one()
    assert row.retryable is False and "50013" in row.error_summary


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
            "INSERT INTO remediation_actions (guild_id, dead_letter_id, actor_id, source, "
            "action, outcome, status_before, status_after, correlation_id) "
            "VALUES (:g, 2, 1, 'staff', 'resolve', 'resolved', 'open', 'resolved', 'c')"),
            {"g": GUILD})
    purged = await purge_expired(clean_db, 30, batch=4)
    assert purged["dead_letters"] == 15
    assert await count(clean_db, "dead_letters", "status = 'open'") == 15
    assert await count(clean_db, "remediation_actions") == 1
    assert (await purge_expired(clean_db, 0))["dead_letters"] == 0
