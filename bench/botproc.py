"""Processes the end-to-end benchmarks (raid, interactions, reconcile) run: the sandbox
Discord in a process of its own (bench/sandbox_host.py), the real bot (`python -m bot run`,
optionally sharded), the database URL the bot gets, and short work directories for them.
What they cost is watched by bench/monitor.py.

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

from bench.common import Context

ROOT = Path(__file__).resolve().parent.parent
API_TOKEN = "bench-api-token-0123456789abcdef0123456789"
READY_LINE = "Lifeline is running as"


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


# -- work directories ----------------------------------------------------------------------

def workdir(ctx: Context, prefix: str) -> Path:
    """A short directory of its own under the bench's work directory."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=ctx.workdir))


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
