"""CPU seconds spent by this process and by the PostgreSQL server (embedded only)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import psutil


def _postmaster(pgdata: Path | None) -> psutil.Process | None:
    if pgdata is None:
        return None
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        return psutil.Process(pid)
    except (OSError, ValueError, IndexError, psutil.Error):
        return None


def server_cpu(pgdata: Path | None) -> float | None:
    """User + system seconds of the postmaster and its children (None if not local)."""
    root = _postmaster(pgdata)
    if root is None:
        return None
    total = 0.0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


@dataclass
class CpuSample:
    wall: float
    client: float
    server: float | None


def sample(pgdata: Path | None) -> CpuSample:
    return CpuSample(time.perf_counter(), time.process_time(), server_cpu(pgdata))


def usage(start: CpuSample, end: CpuSample) -> dict[str, float | None]:
    """Share of one core used by the client and by the server between two samples."""
    wall = max(end.wall - start.wall, 1e-9)
    server = None if start.server is None or end.server is None \
        else round((end.server - start.server) / wall, 2)
    return {"client_cores": round((end.client - start.client) / wall, 2),
            "server_cores": server}
