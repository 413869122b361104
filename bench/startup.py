"""6. Start-up: `python -m bot sandbox --serve` until it is ready.

Ready is the line `Lifeline demo: sandbox Discord at ...` that bot/demo.py prints after
`bot.wait_until_ready()` (database initialised and migrated, bot logged in to the sandbox)
and before the story starts. Measured from the spawn of the process, with a fresh DATA_DIR
(cold: initdb) and again with the same DATA_DIR (warm), always on the embedded PostgreSQL
(DATABASE_URL is removed from the child's environment). The phases come from the child's log
timestamps. The process is then stopped with SIGTERM; its embedded server stops with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import Context, Report, Target

NAME = "startup"
TITLE = "Start-up of `python -m bot sandbox --serve` to ready"
ROOT = Path(__file__).resolve().parent.parent
READY = "Lifeline demo: sandbox Discord at"
PHASES = {"embedded PostgreSQL ready": "database started",
          "database schema at": "schema migrated",
          "synced": "commands synced"}
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_", "DISCORD_", "API_"))}
    env.update({"DATA_DIR": str(data_dir), "API_PORT": str(free_port()),
                "LOG_LEVEL": "INFO", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})
    return env


async def start_once(data_dir: Path, limit: float = 60.0) -> dict[str, Any]:
    spawned_wall = time.time()
    spawned = time.perf_counter()
    log_path = data_dir.parent / "stderr.log"
    with log_path.open("ab") as log:
        # cwd outside the repository: no stray .env is read.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "sandbox", "--serve", "--port", str(free_port()),
            cwd=data_dir.parent, env=child_env(data_dir), stdout=asyncio.subprocess.PIPE,
            stderr=log)
    ready: float | None = None
    try:
        assert proc.stdout is not None
        deadline = spawned + limit
        while ready is None and time.perf_counter() < deadline:
            raw = await asyncio.wait_for(proc.stdout.readline(),
                                         max(0.1, deadline - time.perf_counter()))
            if not raw:
                break
            if raw.decode(errors="replace").startswith(READY):
                ready = time.perf_counter() - spawned
    except TimeoutError:
        pass
    finally:
        stopped = await stop(proc)
    phases = phase_times(log_path.read_text(errors="replace"), spawned_wall)
    log_path.unlink(missing_ok=True)
    return {"ready_s": round(ready, 2) if ready is not None else None,
            "phases_s": phases, "exit_code": stopped}


async def stop(proc: asyncio.subprocess.Process) -> int | None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    if proc.stdout is not None:
        with contextlib.suppress(Exception):
            await proc.stdout.read()
    return proc.returncode


def phase_times(log: str, spawned_wall: float) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in log.splitlines():
        match = STAMP.match(line)
        if not match:
            continue
        at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for needle, phase in PHASES.items():
            if needle in line and phase not in found:
                found[phase] = round(at - spawned_wall, 2)
    return found


async def import_seconds() -> float:
    """A bare interpreter importing what `python -m bot sandbox` imports."""
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import bot.__main__, bot.cli_run, bot.demo",
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    await proc.wait()
    return round(time.perf_counter() - started, 2)


async def run(ctx: Context) -> Report:
    repeats = 1 if ctx.quick else 3
    report = ctx.report(NAME, TITLE, {
        "command": "python -m bot sandbox --serve", "repeats": repeats,
        "ready_line": READY + " ... (bot/demo.py, after wait_until_ready, before the story)",
        "database": "embedded PostgreSQL under a fresh /tmp DATA_DIR (cold), then reused (warm)"})
    runs: dict[str, list[dict[str, Any]]] = {"cold": [], "warm": []}
    imports = [await import_seconds() for _ in range(repeats)]
    for _ in range(repeats):
        tmp = Path(tempfile.mkdtemp(prefix="lbs-", dir="/tmp"))
        try:
            data_dir = tmp / "data"
            runs["cold"].append(await start_once(data_dir))
            runs["warm"].append(await start_once(data_dir))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    summary: dict[str, Any] = {"imports_s": statistics.median(imports)}
    for kind, results in runs.items():
        times = [r["ready_s"] for r in results if r["ready_s"] is not None]
        summary[kind] = {"ready_median_s": statistics.median(times) if times else None,
                         "ready_max_s": max(times) if times else None,
                         "failed": len(results) - len(times), "runs": results}
        phases = results[0]["phases_s"] if results else {}
        report.row(f"{kind}: ready after", f"median {summary[kind]['ready_median_s']} s, max "
                   f"{summary[kind]['ready_max_s']} s over {len(results)} runs; phases of the "
                   f"first run {phases}")
    report.row("imports alone (python -c 'import bot.demo ...')", f"{summary['imports_s']} s")
    report.metrics = summary
    for kind in ("cold", "warm"):
        median = summary[kind]["ready_median_s"]
        report.targets.append(Target(f"{kind} start to ready (median of {repeats})",
                                     median if not summary[kind]["failed"] else None, 3, "<=",
                                     "s"))
    return report
