"""The services of a test, built by the production wiring (bot.wiring.build_services) with
fast retries and the fault seam switched on."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.prometheus import PrometheusMetrics
from bot.settings import Settings
from bot.wiring import build_services
from domain.metrics import CountingMetrics
from domain.persistence.database import Database
from domain.persistence.faults import Faults

TABLES = ("members", "member_transitions", "dead_letters", "remediation_actions",
          "guild_settings", "outbox_attempts", "outbox", "console_sessions", "bulk_jobs",
          "daily_guild_stats", "daily_signature_open", "hourly_transitions",
          "snapshot_watermarks")


def test_settings(**overrides: Any) -> Settings:
    """Settings as a test wants them: no .env, millisecond backoffs (attempts as default),
    a DATA_DIR of its own (the ingest log of one bot is never replayed into another's)."""
    values: dict[str, Any] = {"transition_backoff_initial_seconds": 0.001,
                              "transition_backoff_max_seconds": 0.01,
                              "data_dir": Path(tempfile.mkdtemp(prefix="lifeline-test-")),
                              **overrides}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


test_settings.__test__ = False  # type: ignore[attr-defined]  # not a test for pytest


class ProcessServices:
    """One process's services over the test database, with their `faults` seam, counters
    (`metrics.conflicts`, ...; exported as the API's /metrics) and the database for
    assertions."""

    def __init__(self, db: Database, *, metrics: CountingMetrics | None = None,
                 interactive: Database | None = None, **settings: Any) -> None:
        self.db = db
        self.interactive = interactive
        self.overrides = settings
        self.settings = test_settings(**settings)
        self.faults = Faults()
        self.metrics = metrics if metrics is not None else PrometheusMetrics()
        self.services = build_services(self.settings, db, metrics=self.metrics,
                                       faults=self.faults, interactive=interactive)
        self.stores = self.services.stores
        self.transitions = self.services.transitions
        self.remediation = self.services.remediation
        self.guilds = self.services.guilds

    def another_process(self) -> ProcessServices:
        """The same services as another Lifeline process has them: its own single-flight
        turns and fault seam, on the same database, counting into the same metrics."""
        return ProcessServices(self.db, metrics=self.metrics, interactive=self.interactive,
                               **self.overrides)


async def admin_sql(url: str, sql: str) -> None:
    """One statement outside any transaction (CREATE / DROP DATABASE)."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(sql))
    await engine.dispose()
