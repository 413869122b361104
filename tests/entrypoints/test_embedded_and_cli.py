"""The embedded default and the ops CLI, through real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from domain.errors import TransitionDeadLettered
from domain.lifecycle import Operation, Source, State
from tests.helpers import (
    GUILD,
    OTHER_GUILD,
    STAFF,
    cmd,
    count,
    next_user,
    path_to,
    postmasters,
)
from tests.wiring import ProcessServices

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    env.update(PYTHONPATH=str(ROOT), LOG_LEVEL="WARNING", **extra)
    return env


def _start_holder(data_dir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.entrypoints.hold_db"], cwd=ROOT,
                            env=_env(DATA_DIR=str(data_dir)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("READY"), proc.stderr.read() if proc.stderr else line
    return proc


@pytest.fixture
def data_dir() -> Path:
    # Short path: the socket lives in the data directory (unix socket paths are limited).
    return Path(tempfile.mkdtemp(prefix="lld-", dir="/tmp"))


def test_migrate_on_embedded_default_starts_and_stops_the_database(data_dir: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bot", "migrate"], cwd=ROOT,
                          env=_env(DATA_DIR=str(data_dir)), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "revision 0007" in proc.stdout
    assert (data_dir / "pg" / "PG_VERSION").exists()
    assert postmasters(data_dir / "pg") == []


def test_sigterm_stops_the_embedded_database(data_dir: Path) -> None:
    holder = _start_holder(data_dir)
    assert postmasters(data_dir / "pg")
    holder.send_signal(signal.SIGTERM)
    assert holder.wait(timeout=60) == 128 + signal.SIGTERM
    assert postmasters(data_dir / "pg") == []


def test_sigint_stops_the_embedded_database(data_dir: Path) -> None:
    holder = _start_holder(data_dir)
    holder.send_signal(signal.SIGINT)
    holder.wait(timeout=60)
    assert postmasters(data_dir / "pg") == []


def test_a_run_after_sigkill_recovers_and_then_stops_cleanly(data_dir: Path) -> None:
    holder = _start_holder(data_dir)
    holder.kill()
    holder.wait(timeout=30)
    orphans = postmasters(data_dir / "pg")
    assert orphans, "the postmaster outlives a SIGKILLed owner"
    handles = json.loads((data_dir / "pg" / ".handle_pids.json").read_text())
    assert holder.pid in handles
    # Also kill the orphaned postmaster: the next start must recover from postmaster.pid.
    second = _start_holder(data_dir)
    handles = json.loads((data_dir / "pg" / ".handle_pids.json").read_text())
    assert holder.pid not in handles
    second.send_signal(signal.SIGTERM)
    second.wait(timeout=60)
    assert postmasters(data_dir / "pg") == []


def test_a_run_after_the_postmaster_was_killed_recovers(data_dir: Path) -> None:
    holder = _start_holder(data_dir)
    for pm in postmasters(data_dir / "pg"):
        pm.kill()
    holder.kill()
    holder.wait(timeout=30)
    second = _start_holder(data_dir)  # postmaster.pid is stale; the server starts again
    second.send_signal(signal.SIGTERM)
    second.wait(timeout=60)
    assert postmasters(data_dir / "pg") == []


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", "dlq", *args], cwd=ROOT,
                          env=_env(DATABASE_URL=url), capture_output=True, text=True,
                          timeout=120)


async def _make_dead_letter(services: ProcessServices) -> tuple[int, int]:
    user = next_user()
    for op in path_to(State.VERIFICATION_PENDING):
        await services.transitions.apply(cmd(op, user))

    # Every compare-and-set of this write loses (the services' fault seam): a real dead
    # letter, retries exhausted.
    verify = cmd(Operation.VERIFY, user, source=Source.API)
    services.faults.lose_cas(times=services.settings.transition_max_attempts,
                             when=lambda hit: hit.key == verify.idempotency_key)
    with pytest.raises(TransitionDeadLettered) as info:
        await services.transitions.apply(verify)
    return info.value.dead_letter_id, user


async def test_dlq_cli_lists_shows_and_remediates(services: ProcessServices, migrated: str) -> None:
    entry_id, user = await _make_dead_letter(services)
    second_id, _ = await _make_dead_letter(services)
    g = str(GUILD)
    listed = _cli(migrated, "list", "--guild", g)
    assert listed.returncode == 0 and f"#{entry_id}" in listed.stdout
    assert "2 shown of 2" in listed.stdout
    as_json = json.loads(_cli(migrated, "list", "--guild", g, "--json").stdout)
    assert [i["id"] for i in as_json["items"]] == [second_id, entry_id]
    # Discord ids are strings, inside the payload too.
    first = as_json["items"][1]
    assert (first["user_id"], first["guild_id"]) == (str(user), g)
    assert first["payload"]["user_id"] == str(user) and first["payload"]["guild_id"] == g
    shown = _cli(migrated, "show", "--guild", g, str(entry_id))
    assert "retries_exhausted" in shown.stdout and "history: (none)" in shown.stdout
    retried = _cli(migrated, "retry", "--guild", g, str(entry_id), "--actor", str(STAFF))
    assert retried.returncode == 0 and "resolved" in retried.stdout
    dismissed = _cli(migrated, "dismiss", "--guild", g, str(second_id), "--actor", str(STAFF),
                     "--note", "known issue", "--json")
    assert json.loads(dismissed.stdout)["status"] == "dismissed"
    reopened = _cli(migrated, "reopen", "--guild", g, str(second_id), "--actor", str(STAFF))
    assert "is now open" in reopened.stdout
    group = _cli(migrated, "retry-group", "--guild", g, "verify/retries_exhausted/WriteConflict",
                 "--actor", str(STAFF), "--json")
    assert json.loads(group.stdout)["resolved"] == 1
    stats = json.loads(_cli(migrated, "stats", "--guild", g, "--json").stdout)
    assert stats["by_status"]["resolved"] == 2
    assert await count(services.db, "remediation_actions") == 4
    member = await services.transitions.get_member(GUILD, user)
    assert member is not None and member.state == State.VERIFIED


async def test_dlq_cli_refuses_a_stale_retry_with_exit_3_unless_forced(
        services: ProcessServices, migrated: str) -> None:
    """The member changed after the entry was recorded: `dlq retry` explains what changed
    and exits 3, writing nothing; `--force` replays it (exit 0); `retry-group` skips stale
    entries and says so (exit 0)."""
    entry_id, user = await _make_dead_letter(services)
    _, other = await _make_dead_letter(services)
    for member in (user, other):  # staff verify them by hand meanwhile
        await services.transitions.apply(cmd(Operation.VERIFY, member, source=Source.STAFF))
    g = str(GUILD)
    stale = _cli(migrated, "retry", "--guild", g, str(entry_id), "--actor", str(STAFF))
    assert stale.returncode == 3, stale.stderr
    assert "is stale" in stale.stderr and "verify" in stale.stderr
    assert "--force" in stale.stderr
    assert await count(services.db, "remediation_actions") == 0
    group = _cli(migrated, "retry-group", "--guild", g, "verify/retries_exhausted/WriteConflict",
                 "--actor", str(STAFF))
    assert group.returncode == 0 and "2 stale" in group.stdout, group.stdout
    forced = _cli(migrated, "retry", "--guild", g, str(entry_id), "--actor", str(STAFF),
                  "--force")
    # Replayed, and refused (already verified): a replay that failed exits 1.
    assert forced.returncode == 1 and "still open" in forced.stdout, forced.stdout
    assert await count(services.db, "remediation_actions", "note LIKE 'forced%'") == 1


def test_dlq_cli_exits_4_when_the_database_is_unavailable() -> None:
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = _cli(f"postgresql://nobody@127.0.0.1:{port}/none", "list", "--guild", str(GUILD))
    assert done.returncode == 4, done.stderr
    assert "the database is unavailable" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("args", [
    ("show", "--guild", str(GUILD), "999999"),
    ("show", "--guild", str(OTHER_GUILD), "1"),
    ("show", "--guild", "-5", "1"),
    ("show", "--guild", str(GUILD), "abc"),
    ("list", "--guild", str(GUILD), "--limit", "500"),
    ("list", "--guild", str(GUILD), "--status", "weird"),
    ("resolve", "--guild", str(GUILD), "1", "--actor", str(STAFF), "--note", ""),
    ("resolve", "--guild", str(GUILD), "1", "--actor", str(STAFF), "--note", "x" * 1001),
    ("retry", "--guild", str(GUILD), "1"),
])
async def test_dlq_cli_bad_input_is_one_line_and_changes_nothing(
        services: ProcessServices, migrated: str, args: tuple[str, ...]) -> None:
    await _make_dead_letter(services)
    proc = _cli(migrated, *args)
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert await count(services.db, "remediation_actions") == 0
    assert await count(services.db, "dead_letters", "status = 'open' AND version = 1") == 1
