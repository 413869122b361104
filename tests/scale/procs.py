"""Real Lifeline processes (`python -m bot run|api`) for multi-process tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
API_TOKEN = "scale-test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "TEST_DATABASE_URL", "API_TOKEN", "DISCORD_TOKEN")}
    env.update({"PYTHONPATH": str(ROOT), "DATABASE_URL": database_url, "LOG_LEVEL": "INFO",
                "DB_POOL_SIZE": "6", "DB_MAX_OVERFLOW": "4",
                # A DATA_DIR of its own (its ingest log), unless the test shares one on
                # purpose (a restarted process replays the log of the one it replaces).
                "DATA_DIR": tempfile.mkdtemp(prefix="lifeline-proc-")})
    env.update(extra)
    return env


@dataclass
class Proc:
    """A running process whose output (stdout and stderr) is read into `output` as it
    comes, from the moment the Proc is made."""

    name: str
    process: asyncio.subprocess.Process
    output: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.output.append(raw.decode(errors="replace"))

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait_for_line(self, marker: str, timeout: float = 60) -> str:
        async def find() -> str:
            while True:
                for line in self.output:
                    if marker in line:
                        return line
                if self.process.returncode is not None:
                    raise AssertionError(f"{self.name} exited: {''.join(self.output[-40:])}")
                await asyncio.sleep(0.05)
        return await asyncio.wait_for(find(), timeout)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)

    async def terminate(self, timeout: float = 60) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._reader is not None:
            await self._reader
        return code


async def spawn(name: str, args: list[str], env: dict[str, str]) -> Proc:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    return Proc(name, process)


async def start_bot(name: str, database_url: str, sandbox_api: str, sandbox_gateway: str,
                    token: str, shard_count: int, shard_id: int, **extra: str) -> Proc:
    env = base_env(database_url, DISCORD_TOKEN=token, DISCORD_API_BASE=sandbox_api,
                   DISCORD_GATEWAY_URL=sandbox_gateway, **extra)
    proc = await spawn(name, ["run", "--shard-count", str(shard_count), "--shard-ids",
                              str(shard_id)], env)
    await proc.wait_for_line("Lifeline is running as")
    return proc


async def start_api(name: str, database_url: str, **extra: str) -> tuple[Proc, str]:
    port = free_port()
    env = base_env(database_url, API_TOKEN=API_TOKEN, API_PORT=str(port), **extra)
    proc = await spawn(name, ["api"], env)
    line = await proc.wait_for_line("API listening on")
    return proc, line.strip().rsplit(" ", 1)[-1]
