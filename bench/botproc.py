"""Processes the end-to-end benchmarks (raid, interactions, reconcile) run and watch: the
sandbox Discord in a process of its own (bench/sandbox_host.py), the real bot
(`python -m bot run`, optionally sharded), and a monitor sampling once a second what each
process costs (RSS, CPU seconds, via psutil), the bot's /metrics and the database's
connections.

The bot reaches the bench database through `bot_database_url`: the bench database itself,
BENCH_RAID_DATABASE_URL when set, or a PgBouncer (transaction mode, tests/pgbouncer.py) in
front of it when BENCH_PGBOUNCER=1 (then with DB_STATEMENT_CACHE_SIZE=0).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil

from bench.common import Context

ROOT = Path(__file__).resolve().parent.parent
API_TOKEN = "bench-api-token-0123456789abcdef0123456789"
READY_LINE = "Lifeline is running as"
METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")
# Gauges the durable-ingestion change adds; read when the bot exports them.
OPTIONAL_GAUGES = ("lifeline_ingest_backlog_events", "lifeline_ingest_lag_seconds")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the sandbox process -------------------------------------------------------------------

class SandboxProcess:
    """bench/sandbox_host.py in a subprocess; `call` sends one command and awaits its answer."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log
        self.ready: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._ready = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(cls, workdir: Path, shard_count: int) -> SandboxProcess:
        log = workdir / f"sandbox-{time.monotonic_ns()}.log"
        with log.open("wb") as err:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.sandbox_host", str(shard_count), cwd=workdir,
                env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
                limit=256 * 1024 * 1024)
        host = cls(process, log)
        host.ready = await asyncio.wait_for(host._ready, 60)
        return host

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            message = json.loads(raw)
            if "ready" in message:
                self._ready.set_result(message["ready"])
                continue
            future = self._waiting.pop(int(message["id"]), None)
            if future is None or future.done():
                continue
            if "error" in message:
                future.set_exception(RuntimeError(f"sandbox: {message['error']}"))
            else:
                future.set_result(message["result"])
        failure = RuntimeError(f"the sandbox process ended: {self.tail()}")
        for future in [self._ready, *self._waiting.values()]:
            if not future.done():
                future.set_exception(failure)

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def call(self, cmd: str, timeout: float = 600, **args: Any) -> Any:  # noqa: ASYNC109
        assert self.process.stdin is not None
        ident = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        self.process.stdin.write(json.dumps({"id": ident, "cmd": cmd, **args}).encode() + b"\n")
        await self.process.stdin.drain()
        return await asyncio.wait_for(future, timeout)

    async def stop(self) -> None:
        if self.process.returncode is None and self.process.stdin is not None:
            with contextlib.suppress(ConnectionError):
                self.process.stdin.write(b'{"cmd": "stop"}\n')
                await self.process.stdin.drain()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        self.log.unlink(missing_ok=True)


# -- the bot process -----------------------------------------------------------------------

@dataclass
class BotProcess:
    """`python -m bot run` with its output (stdout and stderr) kept as (arrival time, line)."""

    name: str
    process: asyncio.subprocess.Process
    api_url: str
    spawned: float  # time.time() at spawn
    lines: list[tuple[float, str]] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._reader = asyncio.create_task(self._read())

    @property
    def pid(self) -> int:
        return self.process.pid

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append((time.time(), raw.decode(errors="replace").rstrip("\n")))

    def find(self, marker: str, since: float = 0.0) -> tuple[float, str] | None:
        """The first line containing `marker` that arrived at or after `since`."""
        return next(((at, line) for at, line in self.lines
                     if at >= since and marker in line), None)

    async def wait_for(self, marker: str, timeout: float = 120,  # noqa: ASYNC109
                       since: float = 0.0) -> float:
        """The arrival time of the first line containing `marker`."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(marker, since)
            if found is not None:
                return found[0]
            if self.process.returncode is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}): "
                                   + "\n".join(line for _, line in self.lines[-30:]))
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no line with {marker!r} within {timeout} s")
            await asyncio.sleep(0.05)

    def count(self, marker: str) -> int:
        return sum(marker in line for _, line in self.lines)

    async def stop(self, timeout: float = 60) -> int | None:  # noqa: ASYNC109
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        return self.process.returncode


def bot_env(database_url: str, sandbox: SandboxProcess, data_dir: Path, api_port: int,
            **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_", "DISCORD_", "API_", "DB_"))}
    env.update({"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO",
                "DATABASE_URL": database_url, "DATA_DIR": str(data_dir),
                "DISCORD_TOKEN": sandbox.ready["token"],
                "DISCORD_API_BASE": sandbox.ready["api_url"],
                "DISCORD_GATEWAY_URL": sandbox.ready["gateway_url"],
                "API_TOKEN": API_TOKEN, "API_PORT": str(api_port)})
    env.update(extra)
    return env


async def start_bot(name: str, database_url: str, sandbox: SandboxProcess, workdir: Path,
                    shards: tuple[int, int] | None = None, wait: bool = True,
                    extra: dict[str, str] | None = None) -> BotProcess:
    """Spawn `python -m bot run` (shards = (shard id, shard count)) with a DATA_DIR of its
    own under `workdir` (cwd there too: no stray .env), and wait for its ready line."""
    data_dir = Path(tempfile.mkdtemp(prefix="bot-", dir=workdir))
    port = free_port()
    args = ["run"] if shards is None else [
        "run", "--shard-count", str(shards[1]), "--shard-ids", str(shards[0])]
    spawned = time.time()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=data_dir,
        env=bot_env(database_url, sandbox, data_dir, port, **(extra or {})),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        limit=16 * 1024 * 1024)
    bot = BotProcess(name, process, f"http://127.0.0.1:{port}", spawned)
    if wait:
        await bot.wait_for(READY_LINE)
    return bot


async def stop_all(bots: Sequence[BotProcess]) -> None:
    await asyncio.gather(*(b.stop() for b in bots))


# -- the database the bot uses -------------------------------------------------------------

@asynccontextmanager
async def bot_database_url(ctx: Context) -> AsyncIterator[tuple[str, str, dict[str, str]]]:
    """(URL for the bot, how it was chosen, extra bot settings): BENCH_RAID_DATABASE_URL if
    set, else a PgBouncer in front of the bench database if BENCH_PGBOUNCER=1, else the bench
    database."""
    explicit = os.environ.get("BENCH_RAID_DATABASE_URL")
    if explicit:
        yield explicit, "BENCH_RAID_DATABASE_URL", {}
        return
    if os.environ.get("BENCH_PGBOUNCER") == "1":
        from sqlalchemy.engine import make_url

        from tests.pgbouncer import start_pgbouncer

        bouncer = await asyncio.to_thread(start_pgbouncer, ctx.url, 20)
        try:
            target = make_url(ctx.url)
            url = bouncer.url_for(str(target.database), target.username or "postgres")
            yield url, f"PgBouncer (transaction mode, 20 server connections) :{bouncer.port}", \
                {"DB_STATEMENT_CACHE_SIZE": "0"}
        finally:
            await asyncio.to_thread(bouncer.stop)
        return
    yield ctx.url, "the bench database", {}


# -- watching ------------------------------------------------------------------------------

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


def workdir(ctx: Context, prefix: str) -> Path:
    """A short directory of its own under the bench's work directory."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=ctx.workdir))


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
