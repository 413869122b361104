"""A real PgBouncer in transaction mode in front of the test database, started on demand.

`./run test` installs Debian's `pgbouncer` when it is missing (as root, with apt-get);
where it cannot be had, the tests that need it fail with a one-line reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

BINARY_PLACES = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")


class PgBouncerMissing(RuntimeError):
    pass


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or next(
        (p for p in BINARY_PLACES if os.access(p, os.X_OK)), None)
    if found is None:
        raise PgBouncerMissing(
            "PgBouncer is not installed: `./run test` installs it as root with apt-get "
            "(Debian package pgbouncer); install it by hand elsewhere")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PgBouncer:
    process: subprocess.Popen[bytes]
    directory: Path
    port: int

    def url_for(self, database: str, user: str = "postgres") -> str:
        """A URL through the pooler to `database`."""
        return f"postgresql+asyncpg://{user}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start_pgbouncer(target_url: str, pool: int = 8) -> PgBouncer:
    """PgBouncer (transaction pooling, trust auth, 127.0.0.1) in front of `target_url`'s
    server, for every database on it, with `pool` server connections per database: fewer
    than the clients a test opens, so clients really share server connections."""
    binary = pgbouncer_binary()
    target = make_url(target_url)
    socket_dir = target.query.get("host")  # the embedded server: its unix socket directory
    host = (socket_dir if isinstance(socket_dir, str) else None) or target.host or "127.0.0.1"
    backend = f"host={host} port={target.port or 5432}"
    if target.password:
        backend += f" password={target.password}"
    directory = Path(tempfile.mkdtemp(prefix="llpgb-", dir="/tmp"))
    port = _free_port()
    user = target.username or "postgres"
    (directory / "userlist.txt").write_text(f'"{user}" ""\n')
    (directory / "pgbouncer.ini").write_text(f"""[databases]
* = {backend}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory / "userlist.txt"}
pool_mode = transaction
max_client_conn = 500
default_pool_size = {pool}
ignore_startup_parameters = extra_float_digits
logfile = {directory / "pgbouncer.log"}
pidfile = {directory / "pgbouncer.pid"}
""")
    command = [binary, str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        directory.chmod(0o755)
        for path in directory.iterdir():
            path.chmod(0o644)
        shutil.chown(directory, user="embedded_postgres")
        command[1:1] = ["-u", "embedded_postgres"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            err = (process.stderr.read() if process.stderr else b"").decode(errors="replace")
            raise RuntimeError(f"PgBouncer exited with {process.returncode}: {err.strip()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("PgBouncer did not listen within 15 s") from None
            time.sleep(0.05)
    return PgBouncer(process, directory, port)
