"""The outbox delivery worker: claim due lanes, deliver through the Deliverer, record each
attempt, retry with backoff, dead-letter what cannot be delivered.

State lives in PostgreSQL only (no in-memory timers): the OutboxStore claims a lane's head
with a lock owner and expiry, so workers in several processes share the work and a crashed
worker's claims are taken over once they expire. The worker knows nothing of Discord: the
Deliverer decides how many rows of a lane go out together, and how.
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
from typing import Final, Literal

from domain.console_sessions import ConsoleSessions
from domain.metrics import Metrics
from domain.outbox.port import Deliverer, DeliveryError, Receipt
from domain.outbox.retention import purge_expired
from domain.overview import OverviewService
from domain.persistence.dead_letters import DeadLetterStore
from domain.persistence.outbox import OutboxStore
from domain.records import Attempt, Claimed
from domain.redaction import redact
from domain.vocabulary import DeliveryCause, DeliveryStatus

log = logging.getLogger(__name__)

# What `deliver` answers when the claim expired and another worker took the rows over.
TAKEN_OVER: Final = "taken_over"
Outcome = DeliveryStatus | Literal["taken_over"]


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
    # Dead letters left `retrying` past this are open again (DEAD_LETTER_CLAIM_SECONDS).
    dead_letter_claim_seconds: float = 300.0
    # Log lines a channel refused (a permission, or a channel replaced with /lifeline setup)
    # are tried again this often, a few guilds at a time: they go out, in order, once the
    # channel works again, even if nobody retries them.
    line_probe_seconds: float = 60.0
    line_probe_quiet_seconds: float = 300.0  # a lane that failed within this is left alone
    line_probe_guilds: int = 20
    line_probe_kept_attempts: int = 100  # a re-queued line's history: its newest attempts
    # The console overview's snapshots are refreshed this often (0: never, in this worker).
    overview_refresh_seconds: float = 300.0


class OutboxWorker:
    def __init__(self, store: OutboxStore, deliverer: Deliverer, metrics: Metrics,
                 policy: WorkerPolicy | None = None, worker_id: str | None = None, *,
                 dead_letters: DeadLetterStore | None = None,
                 overview: OverviewService | None = None,
                 sessions: ConsoleSessions | None = None) -> None:
        self.store = store
        # Retention also purges closed dead letters when given their store.
        self.dead_letters = dead_letters
        self.overview = overview  # refreshes the console overview's snapshots when given
        self.sessions = sessions  # purges expired console sessions when given
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
        self._last_claim_check = float("-inf")
        self._last_line_probe = time.monotonic()  # a first probe after one period
        self._last_overview = float("-inf")

    async def claim(self) -> list[list[Claimed]]:
        """Claim the heads of due lanes, each with the rows that go out in the same delivery."""
        return await self.store.claim(
            self.worker_id, lanes=self.policy.lanes_per_claim,
            lock_seconds=self.policy.lock_seconds, max_batch=self.deliverer.max_batch,
            take=self.take)

    def take(self, rows: Sequence[Claimed]) -> int:
        """How many of a lane's leading rows go out together, as the Deliverer says; one
        when it cannot say (it runs inside the claim, which must not fail for one bad row:
        that row then goes out alone, and its delivery says what is wrong with it)."""
        try:
            return self.deliverer.take(rows)
        except Exception:
            log.exception("outbox worker %s: could not size a batch of lane %s; sending "
                          "its head alone", self.worker_id, rows[0].lane)
            return 1

    async def deliver(self, batch: list[Claimed]) -> Outcome:
        """Deliver a claimed batch and record how it went."""
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        receipt: Receipt | None = None
        error: DeliveryError | None = None
        try:
            receipt = await asyncio.wait_for(self.deliverer.deliver(batch),
                                             timeout=self.delivery_timeout)
        except DeliveryError as exc:
            error = exc
        except TimeoutError:
            error = DeliveryError(f"no answer from Discord within "
                                  f"{self.delivery_timeout:.0f}s", retryable=True)
        except Exception as exc:  # anything else: keep the row, retry later, say why
            error = DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True)
        duration_ms = int((time.perf_counter() - t0) * 1000)
        return await self._record(batch, started, duration_ms, receipt, error)

    async def _record(self, batch: list[Claimed], started: datetime, duration_ms: int,
                      receipt: Receipt | None, error: DeliveryError | None) -> Outcome:
        attempts = batch[0].attempts
        if error is None:
            outcome = DeliveryStatus.DELIVERED
        elif not error.retryable:
            outcome = DeliveryStatus.DEAD_LETTERED
        elif attempts >= self.policy.max_attempts:
            outcome = DeliveryStatus.FAILED
        else:
            outcome = DeliveryStatus.RETRY_SCHEDULED
        summary = redact(str(error), 500) if error else None
        attempt = Attempt(
            outcome=outcome, started_at=started, duration_ms=duration_ms,
            http_status=receipt.status if receipt else (error.status if error else None),
            message_id=receipt.message_id if receipt else None, error=summary,
            retryable=bool(error and error.retryable),
            retry_in=self._backoff(attempts, error.retry_after if error else None),
            close_lane=bool(outcome is DeliveryStatus.DEAD_LETTERED and error
                            and error.whole_lane),
            cause=self._cause(outcome, error), discord_code=error.code if error else None)
        ids = [r.id for r in batch]
        if not await self.store.record(batch, self.worker_id, attempt):
            # Our claim expired and another worker took the rows over; it will record.
            log.warning("outbox rows %s were taken over before %s recorded them", ids,
                        self.worker_id)
            return TAKEN_OVER
        self.metrics.delivery(outcome.value)
        if outcome is not DeliveryStatus.DELIVERED:
            log.warning("outbox %s %s: %s", batch[0].kind.value, ids, outcome.value + (
                f" ({summary})" if summary else ""))
        return outcome

    @staticmethod
    def _cause(outcome: DeliveryStatus, error: DeliveryError | None) -> str | None:
        """The cause kept with a delivery that failed: the edge's, or, when attempts ran
        out on errors it could not name, that Discord kept failing."""
        if error is None:
            return None
        if error.cause is None and outcome is DeliveryStatus.FAILED:
            return DeliveryCause.DISCORD_UNAVAILABLE
        return error.cause

    def _backoff(self, attempts: int, retry_after: float | None) -> float:
        exp = min(self.policy.backoff_max, self.policy.backoff_base * 2 ** max(attempts - 1, 0))
        delay = random.uniform(exp / 2, exp)  # jitter, not security
        return max(delay, retry_after or 0.0)

    async def run_once(self) -> int:
        """Claim and deliver what is due now; returns the number of rows handled."""
        batches = await self.claim()
        if batches:
            await asyncio.gather(*(self.deliver(b) for b in batches))
        await self._maybe_purge()
        await self._maybe_reopen_claims()
        await self._maybe_probe_lines()
        await self._maybe_refresh_overview()
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

    async def _maybe_reopen_claims(self) -> None:
        """A replaying process that died left its claimed entries `retrying`: open again
        once their claim expired (checked every half claim, at most every minute)."""
        if self.dead_letters is None:
            return
        now = time.monotonic()
        every = min(60.0, self.policy.dead_letter_claim_seconds / 2)
        if now - self._last_claim_check < every:
            return
        self._last_claim_check = now
        reopened = await self.dead_letters.reopen_expired_claims(
            self.policy.dead_letter_claim_seconds, self.policy.retention_batch)
        if reopened:
            log.warning("%d dead letters were left retrying by a replay that did not finish "
                        "(its process died?); they are open again", reopened)

    async def _maybe_probe_lines(self) -> None:
        if self.policy.line_probe_seconds <= 0:
            return
        now = time.monotonic()
        if now - self._last_line_probe < self.policy.line_probe_seconds:
            return
        self._last_line_probe = now
        guilds = await self.store.requeue_refused_lines(
            self.policy.line_probe_quiet_seconds, self.policy.line_probe_guilds,
            self.policy.line_probe_kept_attempts)
        if guilds:
            log.info("log lines refused by their channel are tried again for guilds %s",
                     ", ".join(map(str, guilds)))

    async def _maybe_refresh_overview(self) -> None:
        """The console's overview snapshots, and its expired sessions gone, every
        `overview_refresh_seconds`."""
        if self.policy.overview_refresh_seconds <= 0:
            return
        now = time.monotonic()
        if now - self._last_overview < self.policy.overview_refresh_seconds:
            return
        self._last_overview = now
        if self.overview is not None:
            await self.overview.refresh()
        if self.sessions is not None:
            await self.sessions.purge_expired(self.policy.retention_batch)

    async def _maybe_purge(self) -> None:
        if self.policy.retention_days <= 0:
            return
        now = time.monotonic()
        if now - self._last_retention < self.policy.retention_every_seconds:
            return
        self._last_retention = now
        purged = await purge_expired(self.store, self.dead_letters,
                                     self.policy.retention_days, self.policy.retention_batch)
        if any(purged.values()):
            log.info("retention: purged %d closed dead letters and %d delivered outbox rows "
                     "older than %d days", purged["dead_letters"], purged["outbox"],
                     self.policy.retention_days)
