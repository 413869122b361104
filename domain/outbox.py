"""The outbox delivery worker: every outbound Discord write (log-channel mirror, role sync).

State lives in PostgreSQL only (no in-memory timers). Rows of one lane are delivered in id
order; a lane's head is claimed with `FOR UPDATE SKIP LOCKED`, a lock owner and a lock
expiry, so several processes can run workers at once and a crashed worker's claims are
taken over once they expire. Consecutive mirror rows of one channel go out as one message
whose nonce is the batch's head id: a resend after a crash is the same batch with the same
nonce, which Discord de-duplicates.

A mirror message carries its lines in embeds, not in its content: an embed description
holds 4,096 characters and a message 10 embeds of 6,000 characters in all, three times the
2,000 characters of a message's content, so a burst of records needs a third of the
messages under the channel's rate limit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import text

from domain.metrics import Metrics
from domain.persistence.database import Database
from domain.redaction import redact

log = logging.getLogger(__name__)

# Discord's embed limits (https://discord.com/developers/docs/resources/message#embed-object-
# embed-limits). Discord counts code points (its API is Python: len()), as the sandbox does;
# `discord_length` counts UTF-16 code units, never fewer, so a batch that fits here fits there.
EMBED_DESCRIPTION_MAX = 4096
EMBEDS_PER_MESSAGE = 10
EMBEDS_TOTAL_MAX = 6000
# One line never takes more than an embed description; longer ones end with "…".
MAX_LINE = EMBED_DESCRIPTION_MAX
# Rows claimed with a head, before packing: short lines (~60 characters) fit 100 a message.
MAX_BATCH_ROWS = 100


class DeliveryError(Exception):
    """A delivery that did not happen. `retryable` False ends the row as dead_lettered."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class Receipt:
    status: int
    message_id: int | None = None


class Deliverer(Protocol):
    """The Discord side, implemented in bot/ with discord.py."""

    async def post_embeds(self, channel_id: int, descriptions: Sequence[str],
                          nonce: str) -> Receipt:
        """One message whose embeds have these descriptions (and nothing else), in order."""
        ...

    async def sync_role(self, guild_id: int, user_id: int, role_id: int,
                        action: str) -> Receipt: ...


@dataclass(frozen=True)
class Claimed:
    id: int
    guild_id: int
    kind: str
    channel_id: int | None
    lane: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class WorkerPolicy:
    lock_seconds: float = 60.0
    poll_seconds: float = 0.5
    max_attempts: int = 8
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    lanes_per_claim: int = 8
    delivery_timeout: float = 30.0
    retention_days: int = 30
    retention_every_seconds: float = 600.0
    retention_batch: int = 500


def discord_length(text: str) -> int:
    """The length Discord checks against its limits, counted conservatively: UTF-16 code
    units, which are never fewer than the code points Discord and the sandbox count (an
    emoji such as 🛠️ is 2 code points and 3 code units)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def mirror_text(row: Claimed) -> str:
    """The row's line, cut to MAX_LINE with an ellipsis: a line alone always fits a message
    (and is never blank: Discord refuses an embed without text)."""
    line = str(row.payload.get("line", ""))
    if not line.strip():
        return "(no text)"
    if discord_length(line) <= MAX_LINE:
        return line
    cut: list[str] = []
    size = 1  # the ellipsis
    for ch in line:
        size += discord_length(ch)
        if size > MAX_LINE:
            break
        cut.append(ch)
    return "".join(cut) + "…"


def embed_descriptions(lines: Sequence[str]) -> list[str]:
    """The lines, in order, as embed descriptions: a line joins the current embed (after a
    newline) while that stays within EMBED_DESCRIPTION_MAX, else it opens the next embed.
    The worker sends exactly this layout; `pack_lines` sizes a batch with the same rule."""
    descriptions: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        extra = discord_length(line) + (1 if current else 0)
        if current and size + extra > EMBED_DESCRIPTION_MAX:
            descriptions.append("\n".join(current))
            current, size = [], 0
            extra = discord_length(line)
        current.append(line)
        size += extra
    if current:
        descriptions.append("\n".join(current))
    return descriptions


def fits_one_message(descriptions: Sequence[str]) -> bool:
    """Whether Discord takes these descriptions as the embeds of one message."""
    return (len(descriptions) <= EMBEDS_PER_MESSAGE
            and all(discord_length(d) <= EMBED_DESCRIPTION_MAX for d in descriptions)
            and sum(discord_length(d) for d in descriptions) <= EMBEDS_TOTAL_MAX)


def pack_lines(rows: Sequence[Claimed]) -> list[Claimed]:
    """The longest prefix of `rows` whose lines fit one message's embeds (at least one row):
    each description within 4,096, at most 10 embeds, at most 6,000 in all."""
    batch: list[Claimed] = []
    embeds = 0  # embeds used so far, the last one `size` long
    size = 0
    total = 0
    for row in rows:
        length = discord_length(mirror_text(row))
        if batch and size + 1 + length <= EMBED_DESCRIPTION_MAX:
            grown, new_size, new_total = embeds, size + 1 + length, total + 1 + length
        else:
            grown, new_size, new_total = embeds + 1, length, total + length
        if batch and (grown > EMBEDS_PER_MESSAGE or new_total > EMBEDS_TOTAL_MAX):
            break
        batch.append(row)
        embeds, size, total = grown, new_size, new_total
    return batch


_CLAIMABLE = """(status IN ('pending', 'retry_scheduled') AND next_attempt_at <= now())
                 OR (status = 'delivering' AND locked_until < now())"""

_HEADS = text(f"""
    SELECT o.id, o.lane, o.status, o.batch_id FROM outbox o
    WHERE ({_CLAIMABLE})
      AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.lane = o.lane AND p.id < o.id
                      AND p.status IN ('pending', 'retry_scheduled', 'delivering'))
    ORDER BY o.next_attempt_at, o.id
    LIMIT :lanes
    FOR UPDATE SKIP LOCKED
""")  # noqa: S608

_FOLLOWERS = text("""
    SELECT id FROM outbox
    WHERE lane = :lane AND id > :head AND status = 'pending' AND kind = 'mirror'
    ORDER BY id LIMIT :limit
    FOR UPDATE SKIP LOCKED
""")

_MARK = text("""
    UPDATE outbox SET status = 'delivering', locked_by = :me,
           locked_until = now() + make_interval(secs => :lock), batch_id = :batch,
           attempts = attempts + 1, updated_at = now()
    WHERE id = ANY(:ids)
    RETURNING id, guild_id, kind::text AS kind, channel_id, lane, payload, attempts
""")


class OutboxWorker:
    def __init__(self, db: Database, deliverer: Deliverer, metrics: Metrics,
                 policy: WorkerPolicy | None = None, worker_id: str | None = None) -> None:
        self.db = db
        self.deliverer = deliverer
        self.metrics = metrics
        self.policy = policy or WorkerPolicy()
        # host:pid:random, so ops (and tests) can tell whose claim a row is under.
        self.worker_id = worker_id or \
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.wakeup = asyncio.Event()
        # A delivery must end (or be abandoned) well before its claim can be taken over.
        self.delivery_timeout = min(self.policy.delivery_timeout, self.policy.lock_seconds / 2)
        # -inf, not 0: monotonic time starts near 0 at boot, and the first round must purge.
        self._last_retention = float("-inf")

    # ---- claiming --------------------------------------------------------------------

    async def claim(self) -> list[list[Claimed]]:
        """Claim the heads of due lanes, each with the rows that go out in the same message."""
        batches: list[list[Claimed]] = []
        async with self.db.transaction() as conn:
            heads = (await conn.execute(_HEADS, {"lanes": self.policy.lanes_per_claim})).all()
            for head in heads:
                if head.batch_id is not None:
                    # A retry or a takeover: resend exactly the batch that may already have
                    # reached Discord, so its nonce matches and it is not posted twice.
                    ids = list((await conn.execute(text(
                        "SELECT id FROM outbox WHERE batch_id = :b AND status IN "
                        "('delivering', 'retry_scheduled') ORDER BY id FOR UPDATE SKIP LOCKED"),
                        {"b": head.batch_id})).scalars())
                    batch_id = head.batch_id
                else:
                    followers = list((await conn.execute(_FOLLOWERS, {
                        "lane": head.lane, "head": head.id,
                        "limit": MAX_BATCH_ROWS - 1})).scalars())
                    ids = [head.id, *followers]
                    batch_id = head.id
                rows = (await conn.execute(text(
                    "SELECT id, guild_id, kind::text AS kind, channel_id, lane, payload, "
                    "attempts FROM outbox WHERE id = ANY(:ids) ORDER BY id"),
                    {"ids": ids})).all()
                claimed = [Claimed(r.id, r.guild_id, r.kind, r.channel_id, r.lane, r.payload,
                                   r.attempts) for r in rows]
                if claimed and claimed[0].kind == "mirror" and batch_id == head.id:
                    claimed = pack_lines(claimed)
                if not claimed:
                    continue
                marked = (await conn.execute(_MARK, {
                    "me": self.worker_id, "lock": self.policy.lock_seconds,
                    "batch": batch_id, "ids": [c.id for c in claimed]})).all()
                # UPDATE ... RETURNING gives no order: the message keeps the lane's order.
                batches.append(sorted((Claimed(r.id, r.guild_id, r.kind, r.channel_id, r.lane,
                                               r.payload, r.attempts) for r in marked),
                                      key=lambda c: c.id))
        return batches

    # ---- delivering ------------------------------------------------------------------

    async def deliver(self, batch: list[Claimed]) -> str:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        receipt: Receipt | None = None
        error: DeliveryError | None = None
        try:
            receipt = await asyncio.wait_for(self._send(batch), timeout=self.delivery_timeout)
        except DeliveryError as exc:
            error = exc
        except TimeoutError:
            error = DeliveryError(f"no answer from Discord within "
                                  f"{self.delivery_timeout:.0f}s", retryable=True)
        except Exception as exc:  # anything else: keep the row, retry later, say why
            error = DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True)
        duration_ms = int((time.perf_counter() - t0) * 1000)
        return await self._record(batch, started, duration_ms, receipt, error)

    async def _send(self, batch: list[Claimed]) -> Receipt:
        head = batch[0]
        if head.kind == "mirror":
            if head.channel_id is None:
                raise DeliveryError("mirror row without a channel", retryable=False)
            descriptions = embed_descriptions([mirror_text(r) for r in batch])
            return await self.deliverer.post_embeds(head.channel_id, descriptions,
                                                    str(head.id))
        payload = head.payload
        return await self.deliverer.sync_role(head.guild_id, int(payload["user_id"]),
                                              int(payload["role_id"]), str(payload["action"]))

    async def _record(self, batch: list[Claimed], started: datetime, duration_ms: int,
                      receipt: Receipt | None, error: DeliveryError | None) -> str:
        ids = [r.id for r in batch]
        attempts = batch[0].attempts
        if error is None:
            outcome = "delivered"
        elif not error.retryable:
            outcome = "dead_lettered"
        elif attempts >= self.policy.max_attempts:
            outcome = "failed"
        else:
            outcome = "retry_scheduled"
        delay = self._backoff(attempts, error.retry_after if error else None)
        summary = redact(str(error), 500) if error else None
        async with self.db.transaction() as conn:
            updated = (await conn.execute(text(
                """UPDATE outbox SET status = CAST(:status AS delivery_status),
                       locked_by = NULL, locked_until = NULL, updated_at = now(),
                       delivered_at = CASE WHEN :ok THEN now() ELSE NULL END,
                       discord_message_id = :message_id, last_error = :error,
                       next_attempt_at = now() + make_interval(secs => :delay)
                   WHERE id = ANY(:ids) AND status = 'delivering' AND locked_by = :me
                   RETURNING id"""),
                {"status": outcome, "ok": error is None,
                 "message_id": receipt.message_id if receipt else None, "error": summary,
                 "delay": delay, "ids": ids, "me": self.worker_id})).all()
            if len(updated) != len(ids):
                # Our claim expired and another worker took the rows over; it will record.
                log.warning("outbox rows %s were taken over before %s recorded them", ids,
                            self.worker_id)
                return "taken_over"
            await conn.execute(text(
                """INSERT INTO outbox_attempts (outbox_id, attempt, started_at, duration_ms,
                       http_status, retryable, error_summary, worker)
                   SELECT unnest(CAST(:ids AS bigint[])), :attempt, :started, :duration,
                          :http_status, :retryable, :error, :me"""),
                {"ids": ids, "attempt": attempts, "started": started, "duration": duration_ms,
                 "http_status": receipt.status if receipt else (error.status if error else None),
                 "retryable": bool(error and error.retryable), "error": summary,
                 "me": self.worker_id})
            if outcome == "dead_lettered" and batch[0].kind == "mirror":
                # The channel is gone or closed to us: later rows of the lane would fail the
                # same way and must not block the lane forever.
                await conn.execute(text(
                    """UPDATE outbox SET status = 'dead_lettered', last_error = :error,
                           updated_at = now()
                       WHERE lane = :lane AND id > :last AND status IN ('pending',
                             'retry_scheduled')"""),
                    {"lane": batch[0].lane, "last": ids[-1], "error": summary})
        self.metrics.delivery(outcome)
        if outcome != "delivered":
            log.warning("outbox %s %s: %s", batch[0].kind, ids, outcome + (
                f" ({summary})" if summary else ""))
        return outcome

    def _backoff(self, attempts: int, retry_after: float | None) -> float:
        exp = min(self.policy.backoff_max, self.policy.backoff_base * 2 ** max(attempts - 1, 0))
        delay = random.uniform(exp / 2, exp)  # jitter, not security
        return max(delay, retry_after or 0.0)

    # ---- running ---------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim and deliver what is due now; returns the number of rows handled."""
        batches = await self.claim()
        if batches:
            await asyncio.gather(*(self.deliver(b) for b in batches))
        await self._maybe_purge()
        return sum(len(b) for b in batches)

    async def run(self, stop: asyncio.Event) -> None:
        log.info("outbox worker %s started", self.worker_id)
        failing = False
        while not stop.is_set():
            try:
                handled = await self.run_once()
                if failing:
                    log.info("outbox worker %s: working again", self.worker_id)
                failing = False
            except Exception as exc:
                # The full traceback once; then one line a round until it works again.
                if failing:
                    log.warning("outbox worker %s: still failing: %s", self.worker_id,
                                redact(str(exc).splitlines()[0] if str(exc) else repr(exc)))
                else:
                    log.exception("outbox worker %s: a round failed; trying again",
                                  self.worker_id)
                failing = True
                handled = 0
            if handled:
                continue
            self.wakeup.clear()
            waiters = [asyncio.ensure_future(stop.wait()),
                       asyncio.ensure_future(self.wakeup.wait())]
            _, pending = await asyncio.wait(waiters, timeout=self.policy.poll_seconds,
                                            return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
        log.info("outbox worker %s stopped", self.worker_id)

    async def _maybe_purge(self) -> None:
        if self.policy.retention_days <= 0:
            return
        now = time.monotonic()
        if now - self._last_retention < self.policy.retention_every_seconds:
            return
        self._last_retention = now
        purged = await purge_expired(self.db, self.policy.retention_days,
                                     self.policy.retention_batch)
        if any(purged.values()):
            log.info("retention: purged %d closed dead letters and %d delivered outbox rows "
                     "older than %d days", purged["dead_letters"], purged["outbox"],
                     self.policy.retention_days)


async def purge_expired(db: Database, retention_days: int, batch: int = 500) -> dict[str, int]:
    """Delete closed dead letters and delivered outbox rows older than the retention, in
    small batches. The audit trail (remediation_actions) is kept."""
    purged = {"dead_letters": 0, "outbox": 0}
    if retention_days <= 0:
        return purged
    for table, where in (
        ("dead_letters", "status IN ('resolved', 'dismissed') AND updated_at < "
                         "now() - make_interval(days => :days)"),
        ("outbox", "status = 'delivered' AND delivered_at < now() - make_interval(days => :days)"),
    ):
        while True:
            async with db.transaction() as conn:
                deleted = (await conn.execute(text(
                    f"""DELETE FROM {table} WHERE id IN (
                          SELECT id FROM {table} WHERE {where} LIMIT :batch
                          FOR UPDATE SKIP LOCKED)"""),  # noqa: S608
                    {"days": retention_days, "batch": batch})).rowcount
            purged[table] += deleted
            if deleted < batch:
                break
    return purged


async def outbox_health(db: Database) -> dict[str, Any]:
    """Pending count, oldest pending age, and dead-lettered deliveries by guild channel."""
    async with db.autocommit() as conn:
        row = (await conn.execute(text(
            """SELECT count(*) AS pending,
                      extract(epoch FROM now() - min(created_at)) AS oldest
               FROM outbox WHERE status IN ('pending', 'retry_scheduled', 'delivering')"""
        ))).one()
    return {"pending": int(row.pending),
            "oldest_pending_age_seconds": float(row.oldest) if row.oldest is not None else None}
