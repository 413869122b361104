"""Watching the processes of the end-to-end benchmarks: a :class:`Monitor` that samples once
a second what each process costs (peak RSS, CPU seconds, via psutil; PostgreSQL as its
postmaster and backends), the bots' /metrics (the gauges of OPTIONAL_GAUGES when exported,
read by :func:`scrape`) and the number of connections to the database.

The processes themselves are started in bench/botproc.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import psutil

from bench.common import Context

METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")
# Gauges the durable-ingestion change adds; read when the bot exports them.
OPTIONAL_GAUGES = ("lifeline_ingest_backlog_events", "lifeline_ingest_lag_seconds")


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def postmaster(pgdata: Path | None) -> psutil.Process | None:
    if pgdata is None:
        return None
    try:
        return psutil.Process(int((pgdata / "postmaster.pid").read_text().splitlines()[0]))
    except (OSError, ValueError, IndexError, psutil.Error):
        return None


@dataclass
class ProcessUsage:
    """Peak RSS (MB) and CPU seconds (user + system) of one process (with its children)."""

    peak_rss_mb: float = 0.0
    cpu_start: float | None = None
    cpu_last: float = 0.0

    def add(self, rss: float, cpu: float) -> None:
        self.peak_rss_mb = max(self.peak_rss_mb, rss / 2**20)
        if self.cpu_start is None:
            self.cpu_start = cpu
        self.cpu_last = cpu

    def as_dict(self) -> dict[str, float]:
        return {"peak_rss_mb": round(self.peak_rss_mb, 1),
                "cpu_s": round(self.cpu_last - (self.cpu_start or 0.0), 1)}


def _usage(procs: list[psutil.Process]) -> tuple[float, float]:
    rss = cpu = 0.0
    for proc in procs:
        try:
            rss += proc.memory_info().rss
            times = proc.cpu_times()
            cpu += times.user + times.system
        except psutil.Error:
            continue
    return rss, cpu


@dataclass
class Sample:
    at: float  # time.time()
    connections: int | None
    gauges: dict[str, float]  # summed over the bot processes


class Monitor:
    """Once a second: RSS and CPU of every watched process (postgres: the postmaster and its
    backends; RSS summed, so shared buffers count once per backend that touched them),
    the bots' /metrics (the gauges of OPTIONAL_GAUGES when exported), and the number of
    connections to the database (pg_stat_activity)."""

    def __init__(self, ctx: Context, processes: dict[str, int], api_urls: Sequence[str]
                 ) -> None:
        self.ctx = ctx
        self.usage: dict[str, ProcessUsage] = {name: ProcessUsage() for name in processes}
        self.procs: dict[str, psutil.Process | None] = {}
        for name, pid in processes.items():
            try:
                self.procs[name] = psutil.Process(pid)
            except psutil.Error:
                self.procs[name] = None
        master = postmaster(ctx.pgdata)
        if master is not None:
            self.procs["postgres"] = master
            self.usage["postgres"] = ProcessUsage()
        self.api_urls = list(api_urls)
        self.samples: list[Sample] = []
        self.metrics_seen: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Monitor:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def watch(self, name: str, pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            self.procs[name] = psutil.Process(pid)
            self.usage.setdefault(name, ProcessUsage())

    async def _run(self) -> None:
        conn = await self.ctx.connect()
        try:
            async with aiohttp.ClientSession() as http:
                while True:
                    started = time.monotonic()
                    await self.sample(conn, http)
                    await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        finally:
            await conn.close()

    async def sample(self, conn: asyncpg.Connection, http: aiohttp.ClientSession) -> None:
        for name, proc in self.procs.items():
            if proc is not None:
                self.usage[name].add(*_usage(_tree(proc)))
        try:
            connections = int(await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"))
        except (asyncpg.PostgresError, OSError):
            connections = None
        gauges: dict[str, float] = {}
        for url in self.api_urls:
            for name, value in (await scrape(http, url)).items():
                gauges[name] = gauges.get(name, 0.0) + value
        self.metrics_seen.update(gauges)
        self.samples.append(Sample(time.time(), connections, gauges))

    def peak_connections(self) -> int | None:
        seen = [s.connections for s in self.samples if s.connections is not None]
        return max(seen) if seen else None

    def gauge_series(self, name: str) -> list[tuple[float, float]]:
        return [(s.at, s.gauges[name]) for s in self.samples if name in s.gauges]


async def scrape(http: aiohttp.ClientSession, api_url: str) -> dict[str, float]:
    """The OPTIONAL_GAUGES a bot's /metrics exports now (summed over labels); {} if none."""
    try:
        async with http.get(f"{api_url}/metrics",
                            timeout=aiohttp.ClientTimeout(total=2)) as resp:
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError):
        return {}
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = METRIC.match(line)
        if match and match.group(1) in OPTIONAL_GAUGES:
            with contextlib.suppress(ValueError):
                found[match.group(1)] = found.get(match.group(1), 0.0) + float(match.group(3))
    return found
