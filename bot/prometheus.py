"""Prometheus export of the service counters, plus gauges read from the database at scrape time.

Each instance owns its `CollectorRegistry` (never the global one), so several containers in one
process (tests, bot and API side by side) do not collide. It also keeps the in-process counts
of `CountingMetrics`, which tests and the demo read.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from domain.ingest.pipeline import Ingestion
from domain.metrics import CountingMetrics
from domain.persistence.ops import OpsStore
from domain.redaction import redact
from domain.vocabulary import ReasonCode

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
DB_TIMEOUT_SECONDS = 2.0


class PrometheusMetrics(CountingMetrics):
    def __init__(self) -> None:
        super().__init__()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._transitions = Counter(
            "lifeline_transitions", "Transition requests by operation, source and outcome",
            ["operation", "source", "outcome"], registry=r)
        self._conflicts = Counter(
            "lifeline_cas_conflicts", "Compare-and-set writes that found the member changed",
            ["operation"], registry=r)
        self._retries = Counter(
            "lifeline_transition_retries", "Transition attempts after the first",
            ["operation"], registry=r)
        self._dead_letters = Counter(
            "lifeline_dead_letters_created", "Dead-letter records written, by reason",
            ["reason_code"], registry=r)
        self._remediations = Counter(
            "lifeline_remediation_actions", "Dead-letter remediation actions by outcome",
            ["action", "outcome"], registry=r)
        self._deliveries = Counter(
            "lifeline_outbox_deliveries", "Outbox delivery attempts by outcome",
            ["outcome"], registry=r)
        self._dead_letters_open = Gauge(
            "lifeline_dead_letters_open", "Dead letters open or being retried, by reason "
            "(all guilds, read at scrape time)", ["reason_code"], registry=r)
        self._outbox_pending = Gauge(
            "lifeline_outbox_pending", "Outbox rows not yet delivered (read at scrape time)",
            registry=r)
        self._outbox_oldest = Gauge(
            "lifeline_outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered outbox row, 0 when none (read at scrape time)",
            registry=r)
        self._ingest_lag = Gauge(
            "lifeline_ingest_lag_seconds", "Age of the oldest gateway event logged and not "
            "yet applied, 0 when none waits (bot processes only)", registry=r)
        self._ingest_backlog = Gauge(
            "lifeline_ingest_backlog_events", "Gateway events logged and not yet applied",
            registry=r)
        self._ingest_log_bytes = Gauge(
            "lifeline_ingest_log_bytes", "Bytes of waiting events in the ingest log "
            "(bounded by SPOOL_MAX_BYTES)", registry=r)
        self._ingest_dropped = Gauge(
            "lifeline_ingest_dropped_events_total", "Gateway events refused since start "
            "because the ingest log was full (their guilds are reconciled in full)",
            registry=r)
        self._database_up = Gauge(
            "lifeline_database_up", "1 when the gauges above could be read at this scrape",
            registry=r)

    def transition(self, operation: str, source: str, outcome: str) -> None:
        super().transition(operation, source, outcome)
        self._transitions.labels(operation, source, outcome).inc()

    def conflict(self, operation: str) -> None:
        super().conflict(operation)
        self._conflicts.labels(operation).inc()

    def retry(self, operation: str) -> None:
        super().retry(operation)
        self._retries.labels(operation).inc()

    def dead_letter(self, reason_code: str) -> None:
        super().dead_letter(reason_code)
        self._dead_letters.labels(reason_code).inc()

    def remediation(self, action: str, outcome: str) -> None:
        super().remediation(action, outcome)
        self._remediations.labels(action, outcome).inc()

    def delivery(self, outcome: str) -> None:
        super().delivery(outcome)
        self._deliveries.labels(outcome).inc()

    async def refresh_from(self, ops: OpsStore) -> None:
        """Read the database-backed gauges; one round trip."""
        gauges = await ops.gauges()
        open_by_reason = {reason.value: 0 for reason in ReasonCode}
        open_by_reason.update(gauges.open_dead_letters)
        for reason, n in open_by_reason.items():
            self._dead_letters_open.labels(reason).set(n)
        self._outbox_pending.set(gauges.outbox_pending)
        self._outbox_oldest.set(gauges.outbox_oldest_pending_age_seconds)

    def refresh_ingest(self, ingestion: Ingestion) -> None:
        status = ingestion.status()
        self._ingest_lag.set(status.lag_seconds)
        self._ingest_backlog.set(status.backlog)
        self._ingest_log_bytes.set(status.log_bytes)
        self._ingest_dropped.set(status.dropped)

    async def scrape(self, ops: OpsStore, ingestion: Ingestion | None = None) -> bytes:
        """The text exposition format, with the database gauges read just now (and the
        ingest pipeline's, when this process runs the bot).

        A database outage does not hide the counters: the gauges keep their last values and
        `lifeline_database_up` says 0.
        """
        if ingestion is not None:
            self.refresh_ingest(ingestion)
        try:
            async with asyncio.timeout(DB_TIMEOUT_SECONDS):
                await self.refresh_from(ops)
        except Exception as exc:
            log.warning("metrics: could not read the database gauges: %s",
                        redact(f"{type(exc).__name__}: {exc}"))
            self._database_up.set(0)
        else:
            self._database_up.set(1)
        return generate_latest(self.registry)
