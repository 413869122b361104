"""OutboxStore: the outbox (Discord side effects waiting to be delivered) and its delivery
attempts.

Rows of one lane (`channel:<id>` for the log-channel mirror, `member:<guild>:<user>` for role
sync) are delivered in id order. A lane's head is claimed with `FOR UPDATE SKIP LOCKED`, a
lock owner and a lock expiry, so several processes can run workers at once and a crashed
worker's claims are taken over once they expire. Rows claimed together share a `batch_id`
(the head's id): a retry or a takeover claims exactly that batch again, so the resend is the
same delivery (with the same nonce, which Discord de-duplicates).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import text

from domain.mirror import level_values
from domain.persistence.database import Database
from domain.persistence.faults import Faults, Point
from domain.persistence.sql import ENQUEUE_MIRROR
from domain.records import Attempt, Claimed
from domain.vocabulary import DeliveryCause, DeliveryStatus, OutboxKind

_CLAIMABLE = """(status IN ('pending', 'retry_scheduled') AND next_attempt_at <= now())
                 OR (status = 'delivering' AND locked_until < now())"""

_INSTALLATION = "(SELECT identity FROM installation) AS installation"

HEADS = text(f"""
    SELECT o.id, o.lane, o.kind::text AS kind, o.batch_id FROM outbox o
    WHERE ({_CLAIMABLE})
      AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.lane = o.lane AND p.id < o.id
                      AND p.status IN ('pending', 'retry_scheduled', 'delivering'))
    ORDER BY o.next_attempt_at, o.id
    LIMIT :lanes
    FOR UPDATE SKIP LOCKED
""")  # noqa: S608

# A retry or a takeover: exactly the batch that may already have reached Discord.
BATCH = text("""
    SELECT id FROM outbox WHERE batch_id = :batch AND status IN ('delivering', 'retry_scheduled')
    ORDER BY id FOR UPDATE SKIP LOCKED
""")

FOLLOWERS = text("""
    SELECT id FROM outbox
    WHERE lane = :lane AND id > :head AND status = 'pending'
      AND kind = CAST(:kind AS outbox_kind)
    ORDER BY id LIMIT :limit
    FOR UPDATE SKIP LOCKED
""")

ROWS = text(f"""
    SELECT id, guild_id, kind::text AS kind, channel_id, lane, payload, attempts,
           {_INSTALLATION}
    FROM outbox WHERE id = ANY(:ids) ORDER BY id
""")  # noqa: S608

MARK = text(f"""
    UPDATE outbox SET status = 'delivering', locked_by = :me,
           locked_until = now() + make_interval(secs => :lock), batch_id = :batch,
           attempts = attempts + 1, updated_at = now()
    WHERE id = ANY(:ids)
    RETURNING id, guild_id, kind::text AS kind, channel_id, lane, payload, attempts,
              {_INSTALLATION}
""")  # noqa: S608

# Only rows still under this worker's claim: after a takeover the other worker records.
RECORD = text("""
    UPDATE outbox SET status = CAST(:status AS delivery_status),
           locked_by = NULL, locked_until = NULL, updated_at = now(),
           delivered_at = CASE WHEN :ok THEN now() ELSE NULL END,
           discord_message_id = :message_id, last_error = :error,
           cause = :cause, discord_code = :code,
           next_attempt_at = now() + make_interval(secs => :delay)
    WHERE id = ANY(:ids) AND status = 'delivering' AND locked_by = :me
    RETURNING id
""")

RECORD_ATTEMPTS = text("""
    INSERT INTO outbox_attempts (outbox_id, attempt, started_at, duration_ms, http_status,
                                 discord_code, outcome, retryable, error_summary, worker)
    SELECT unnest(CAST(:ids AS bigint[])), :attempt, :started, :duration, :http_status,
           :code, :outcome, :retryable, :error, :me
""")

CLOSE_LANE = text("""
    UPDATE outbox SET status = 'dead_lettered', last_error = :error, cause = :cause,
           discord_code = :code, updated_at = now()
    WHERE lane = :lane AND id > :last AND status IN ('pending', 'retry_scheduled')
""")

# Log lines a channel refused for a reason staff may fix in Discord (a permission), or whose
# channel /lifeline setup has replaced since (deleted, or none was set): back to pending, to
# the guild's log channel as set now, a few guilds at a time, each not tried in the last
# `quiet` seconds. The lane's order holds: they keep their ids.
REQUEUE_REFUSED_LINES = text("""
    WITH due AS (
      SELECT DISTINCT o.guild_id FROM outbox o JOIN guild_settings gs USING (guild_id)
      WHERE o.kind = 'mirror' AND o.status IN ('dead_lettered', 'failed')
        AND o.updated_at < now() - make_interval(secs => :quiet)
        AND gs.log_channel_id IS NOT NULL
        AND (o.cause = ANY(:fixable)
             OR (o.cause = ANY(:replaced) AND o.channel_id IS DISTINCT FROM gs.log_channel_id))
      LIMIT :guilds
    )
    UPDATE outbox o SET status = 'pending', attempts = 0, batch_id = NULL, locked_by = NULL,
           locked_until = NULL, next_attempt_at = now(), updated_at = now(), cause = NULL,
           discord_code = NULL, channel_id = gs.log_channel_id,
           lane = 'channel:' || gs.log_channel_id
    FROM guild_settings gs
    WHERE o.guild_id = gs.guild_id AND o.guild_id IN (SELECT guild_id FROM due)
      AND o.kind = 'mirror' AND o.status IN ('dead_lettered', 'failed')
      AND (o.cause = ANY(:fixable)
           OR (o.cause = ANY(:replaced) AND o.channel_id IS DISTINCT FROM gs.log_channel_id))
    RETURNING o.guild_id, o.id
""")
# A line put back in line keeps only its newest attempts: one refused for days is tried
# every few minutes, and its history would otherwise grow until it is delivered.
TRIM_ATTEMPTS = text("""
    DELETE FROM outbox_attempts WHERE id IN (
      SELECT x.id FROM unnest(CAST(:ids AS bigint[])) AS t(outbox_id)
      CROSS JOIN LATERAL (SELECT id FROM outbox_attempts a WHERE a.outbox_id = t.outbox_id
                          ORDER BY id DESC OFFSET :kept) x)
""")
FIXABLE_LINE_CAUSES = [DeliveryCause.CHANNEL_HIDDEN.value,
                       DeliveryCause.MISSING_SEND_MESSAGES.value,
                       DeliveryCause.MISSING_EMBED_LINKS.value,
                       DeliveryCause.DISCORD_UNAVAILABLE.value]
REPLACED_LINE_CAUSES = [DeliveryCause.CHANNEL_DELETED.value,
                        DeliveryCause.NO_LOG_CHANNEL.value, DeliveryCause.REFUSED.value]

# Retention: delivered rows past it go (their outbox_attempts with them, by cascade).
PURGE_DELIVERED = text("""
    DELETE FROM outbox WHERE id IN (
      SELECT id FROM outbox
      WHERE status = 'delivered' AND delivered_at < now() - make_interval(days => :days)
      LIMIT :limit FOR UPDATE SKIP LOCKED)
""")


def _claimed(row: Any) -> Claimed:
    return Claimed(row.id, row.guild_id, OutboxKind(row.kind), row.channel_id, row.lane,
                   row.payload, row.attempts, row.installation)


class OutboxStore:
    def __init__(self, db: Database, faults: Faults | None = None) -> None:
        self.db = db
        self.faults = faults

    # ---- the delivery worker --------------------------------------------------------------

    async def claim(self, worker_id: str, *, lanes: int, lock_seconds: float,
                    max_batch: Callable[[OutboxKind], int],
                    take: Callable[[Sequence[Claimed]], int]) -> list[list[Claimed]]:
        """Claim the heads of up to `lanes` due lanes for `lock_seconds`, each as a batch in
        lane order: a new head with the pending rows after it of its kind (at most
        `max_batch(kind)` rows, of which the first `take(rows)` are kept: what goes out in
        one delivery), or the earlier batch again for a retry or a takeover."""
        batches: list[list[Claimed]] = []
        async with self.db.transaction() as conn:
            if self.faults is not None:
                await self.faults.enter(Point.OUTBOX_CLAIM, conn,
                                        detail={"worker": worker_id, "lanes": lanes})
            heads = (await conn.execute(HEADS, {"lanes": lanes})).all()
            for head in heads:
                fresh = head.batch_id is None
                if fresh:
                    limit = max_batch(OutboxKind(head.kind)) - 1
                    followers = [] if limit <= 0 else list((await conn.execute(FOLLOWERS, {
                        "lane": head.lane, "head": head.id, "kind": head.kind,
                        "limit": limit})).scalars())
                    ids, batch_id = [head.id, *followers], head.id
                else:
                    ids = list((await conn.execute(BATCH, {"batch": head.batch_id})).scalars())
                    batch_id = head.batch_id
                rows = [_claimed(r) for r in (await conn.execute(ROWS, {"ids": ids})).all()]
                if not rows:
                    continue
                if fresh:
                    rows = rows[:min(max(take(rows), 1), len(rows))]
                marked = (await conn.execute(MARK, {
                    "me": worker_id, "lock": lock_seconds, "batch": batch_id,
                    "ids": [r.id for r in rows]})).all()
                # UPDATE ... RETURNING gives no order: a batch keeps the lane's order.
                batches.append(sorted((_claimed(r) for r in marked), key=lambda c: c.id))
        return batches

    async def record(self, batch: Sequence[Claimed], worker_id: str, attempt: Attempt) -> bool:
        """Record how the delivery of a claimed batch ended, with one attempt row per row
        (and the rest of the lane dead-lettered when `attempt.close_lane`). False when the
        claim had expired and another worker took the rows over: it records, not this one."""
        ids = [r.id for r in batch]
        async with self.db.transaction() as conn:
            if self.faults is not None:
                await self.faults.enter(Point.OUTBOX_RECORD, conn, guild_id=batch[0].guild_id,
                                        detail={"ids": ids, "worker": worker_id,
                                                "outcome": attempt.outcome})
            updated = (await conn.execute(RECORD, {
                "status": attempt.outcome.value,
                "ok": attempt.outcome is DeliveryStatus.DELIVERED,
                "message_id": attempt.message_id, "error": attempt.error,
                "cause": attempt.cause, "code": attempt.discord_code,
                "delay": attempt.retry_in, "ids": ids, "me": worker_id})).all()
            if len(updated) != len(ids):
                return False
            await conn.execute(RECORD_ATTEMPTS, {
                "ids": ids, "attempt": batch[0].attempts, "started": attempt.started_at,
                "duration": attempt.duration_ms, "http_status": attempt.http_status,
                "code": attempt.discord_code, "outcome": attempt.outcome.value,
                "retryable": attempt.retryable, "error": attempt.error, "me": worker_id})
            if attempt.close_lane:
                await conn.execute(CLOSE_LANE, {"lane": batch[0].lane, "last": ids[-1],
                                                "error": attempt.error, "cause": attempt.cause,
                                                "code": attempt.discord_code})
        return True

    async def requeue_refused_lines(self, quiet_seconds: float, guilds: int,
                                    kept_attempts: int) -> list[int]:
        """Put log lines refused by their channel back in line (see REQUEUE_REFUSED_LINES),
        each with its newest `kept_attempts` attempts; the guilds whose lines go again."""
        async with self.db.transaction() as conn:
            rows = (await conn.execute(REQUEUE_REFUSED_LINES, {
                "quiet": quiet_seconds, "guilds": guilds, "fixable": FIXABLE_LINE_CAUSES,
                "replaced": REPLACED_LINE_CAUSES})).all()
            if rows:
                await conn.execute(TRIM_ATTEMPTS, {"ids": [r.id for r in rows],
                                                   "kept": kept_attempts})
            return sorted({r.guild_id for r in rows})

    # ---- retention ------------------------------------------------------------------------

    async def purge_delivered(self, retention_days: int, limit: int) -> int:
        """Delete up to `limit` delivered rows older than the retention; how many went."""
        async with self.db.transaction() as conn:
            result = await conn.execute(PURGE_DELIVERED,
                                        {"days": retention_days, "limit": limit})
            return int(result.rowcount)

    # ---- queueing and reading ---------------------------------------------------------------

    async def enqueue_mirror(self, records: Iterable[tuple[int, Mapping[str, Any]]]) -> None:
        """Queue log-channel records, in one transaction: (guild id, facts) pairs, each
        queued only when its guild has a log channel and a mirror level that includes its
        kind of record (`facts["record"]`; see domain/mirror.py)."""
        params = [{"guild_id": guild_id, "payload": json.dumps(dict(facts)),
                   "levels": level_values(str(facts["record"]))}
                  for guild_id, facts in records]
        if not params:
            return
        async with self.db.transaction() as conn:
            await conn.execute(ENQUEUE_MIRROR, params)
