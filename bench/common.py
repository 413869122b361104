"""What every benchmark shares: the database it runs on, the machine it states, its report."""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from bot.embedded_pg import start_embedded
from bot.settings import Settings
from bot.wiring import build_services
from domain.lifecycle import Operation, State
from domain.lifecycle import shortest_path as table_path
from domain.persistence.database import Database, asyncpg_url
from domain.persistence.migrate import upgrade
from domain.services import Services

TABLES = ("members", "member_transitions", "dead_letters", "remediation_actions",
          "guild_settings", "outbox_attempts", "outbox")
# Snowflake-sized ids, like Discord's.
GUILD = 1_100_000_000_000_000_001
ACTOR = 1_200_000_000_000_000_001


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def shortest_path(target: State) -> list[tuple[Operation, State | None, State]]:
    """(operation, from, to) steps from "no row" to `target`, derived from the table."""
    return [(step.operation, step.from_state, step.to_state)
            for step in table_path(target)]


@dataclass
class Target:
    what: str
    value: float | None
    limit: float
    op: str  # "<=" or ">="
    unit: str = ""

    @property
    def met(self) -> bool:
        if self.value is None:
            return False
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {"what": self.what, "value": self.value, "target": f"{self.op} {self.limit:g}"
                + (f" {self.unit}" if self.unit else ""), "met": self.met}


@dataclass
class Report:
    """One benchmark's outcome: what ran where, with which parameters, and what it found."""

    name: str
    title: str
    params: dict[str, Any]
    machine: dict[str, Any]
    date: str = field(default_factory=now_iso)
    rows: list[tuple[str, str]] = field(default_factory=list)  # the printed table
    metrics: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def row(self, label: str, value: str) -> None:
        self.rows.append((label, value))

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "date": self.date,
                "machine": self.machine, "params": self.params, "metrics": self.metrics,
                "targets": [t.as_dict() for t in self.targets], "notes": self.notes,
                "table": [list(r) for r in self.rows], "seconds": round(self.seconds, 1),
                **self.extra}


@dataclass
class Context:
    quick: bool
    url: str  # SQLAlchemy (postgresql+asyncpg) URL
    where: str
    machine: dict[str, Any] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    pgdata: Path | None = None  # the embedded cluster's data directory (CPU accounting)
    shared: dict[str, Any] = field(default_factory=dict)  # figures one benchmark gives another

    @property
    def dsn(self) -> str:
        """The same database as a plain asyncpg DSN."""
        return make_url(self.url).set(drivername="postgresql").render_as_string(
            hide_password=False)

    def report(self, name: str, title: str, params: dict[str, Any]) -> Report:
        machine = {**self.machine, "load_average_at_start": load_average()}
        return Report(name, title, {"quick": self.quick, **params}, machine)

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn)

    async def reset(self) -> None:
        conn = await self.connect()
        try:
            await conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()

    def database(self, pool_size: int = 10) -> Database:
        return Database(self.url, pool_size=pool_size, max_overflow=4,
                        application_name="lifeline-bench")


def services(db: Database, group_concurrency: int = 8) -> Services:
    """Built by the production wiring (bot.wiring.build_services: Prometheus metrics, the
    default RetryPolicy()), over `db`."""
    built = build_services(Settings(_env_file=None), db)  # type: ignore[call-arg]
    built.remediation.group_concurrency = group_concurrency
    return built


async def _server_facts(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        facts: dict[str, Any] = {"postgresql": await conn.fetchval("SHOW server_version")}
        for name in ("shared_buffers", "synchronous_commit", "fsync", "max_connections"):
            facts[name] = await conn.fetchval(f"SHOW {name}")
        return facts
    finally:
        await conn.close()


def machine_facts() -> dict[str, Any]:
    return {"cores": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(),
            "platform": platform.platform(), "host": platform.node()}


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql")
                                 .render_as_string(hide_password=False))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def bench_database(external: str | None) -> AsyncIterator[Context]:
    """A migrated database of its own: on DATABASE_URL's server (a new database, dropped at
    the end) or a throwaway embedded cluster under a short /tmp path."""
    tmp: Path | None = None
    embedded = None
    dropped: tuple[str, str] | None = None
    try:
        if external:
            base = asyncpg_url(external)
            name = f"lifeline_bench_{uuid.uuid4().hex[:10]}"
            await _admin(base, f'CREATE DATABASE "{name}"')
            dropped = (base, name)
            url = make_url(base).set(database=name).render_as_string(hide_password=False)
            where = f"DATABASE_URL server, database {name}"
        else:
            tmp = Path(tempfile.mkdtemp(prefix="lb-", dir="/tmp"))
            started = time.perf_counter()
            embedded = await asyncio.to_thread(start_embedded, tmp / "pg", delete_on_exit=True)
            url = embedded.url
            where = (f"embedded PostgreSQL in {tmp / 'pg'} "
                     f"(started in {time.perf_counter() - started:.1f} s)")
        await upgrade(url)
        ctx = Context(quick=False, url=url, where=where,
                      workdir=tmp or Path(tempfile.gettempdir()),
                      pgdata=tmp / "pg" if tmp is not None else None)
        ctx.machine = {**machine_facts(), **await _server_facts(ctx.dsn), "database": where}
        yield ctx
    finally:
        if dropped is not None:
            await _admin(dropped[0], f'DROP DATABASE IF EXISTS "{dropped[1]}" WITH (FORCE)')
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
