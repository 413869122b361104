"""`python -m bot dlq` for delete, retry-all, history-keeping, unresolved-by-default lists,
stack traces and the stats total, through real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from domain.errors import TransitionDeadLettered
from domain.lifecycle import Operation, Source, State
from tests.helpers import GUILD, STAFF, cmd, count, next_user, path_to
from tests.wiring import ProcessServices

ROOT = Path(__file__).resolve().parents[2]
G = str(GUILD)
ACTOR = ("--actor", str(STAFF))


def _cli(url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    env.update(PYTHONPATH=str(ROOT), LOG_LEVEL="WARNING", DATABASE_URL=url)
    return subprocess.run([sys.executable, "-m", "bot", "dlq", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120,
                          input=stdin if stdin is not None else "")


async def _entry(services: ProcessServices, op: Operation = Operation.VERIFY
                 ) -> tuple[int, int]:
    """A real dead letter (every compare-and-set of the write loses): (entry id, user)."""
    user = next_user()
    for step in path_to(State.VERIFICATION_PENDING):
        await services.transitions.apply(cmd(step, user))
    write = cmd(op, user, source=Source.API)
    services.faults.lose_cas(times=services.settings.transition_max_attempts,
                             when=lambda hit: hit.key == write.idempotency_key)
    with pytest.raises(TransitionDeadLettered) as info:
        await services.transitions.apply(write)
    return info.value.dead_letter_id, user


async def test_list_is_unresolved_by_default_show_has_the_stack_and_stats_a_total(
        services: ProcessServices, migrated: str) -> None:
    (first, _), (second, _), (third, _) = [await _entry(services) for _ in range(3)]
    await services.remediation.dismiss(GUILD, second, STAFF, "noise")
    listed = _cli(migrated, "list", "--guild", G, "--json")
    assert [i["id"] for i in json.loads(listed.stdout)["items"]] == [third, first]
    assert "stack_trace" not in json.loads(listed.stdout)["items"][0]
    shown_json = json.loads(_cli(migrated, "show", "--guild", G, str(first), "--json").stdout)
    assert "WriteConflict" in shown_json["entry"]["stack_trace"]
    oldest = _cli(migrated, "list", "--guild", G, "--status", "all", "--order", "oldest",
                  "--limit", "2", "--json")
    page = json.loads(oldest.stdout)
    assert [i["id"] for i in page["items"]] == [first, second]
    rest = _cli(migrated, "list", "--guild", G, "--status", "all", "--order", "oldest",
                "--cursor", page["next_cursor"], "--json")
    assert [i["id"] for i in json.loads(rest.stdout)["items"]] == [third]
    shown = _cli(migrated, "show", "--guild", G, str(first))
    assert "stack trace:" in shown.stdout
    assert "  Traceback (most recent call last):" in shown.stdout
    assert "WriteConflict" in shown.stdout.split("stack trace:")[1]
    stats = _cli(migrated, "stats", "--guild", G)
    assert stats.stdout.startswith("total: 3\n"), stats.stdout
    assert json.loads(_cli(migrated, "stats", "--guild", G, "--json").stdout)["total"] == 3


async def test_delete_needs_a_note_and_keeps_the_audit_rows(
        services: ProcessServices, migrated: str) -> None:
    entry, _ = await _entry(services)
    blank = _cli(migrated, "delete", "--guild", G, str(entry), *ACTOR, "--note", "  ")
    assert blank.returncode == 1 and "a note of 1 to 1000 characters" in blank.stderr
    missing = _cli(migrated, "delete", "--guild", G, str(entry), *ACTOR)
    assert missing.returncode == 2 and "--note" in missing.stderr
    assert await count(services.db, "dead_letters") == 1
    done = _cli(migrated, "delete", "--guild", G, str(entry), *ACTOR, "--note", "dup")
    assert done.returncode == 0, done.stderr
    assert f"#{entry} deleted (it was open)" in done.stdout
    assert await count(services.db, "dead_letters") == 0
    assert await count(services.db, "remediation_actions",
                       "dead_letter_id = :id AND action = 'delete' AND note = 'dup' "
                       "AND source = 'cli'", id=entry) == 1
    gone = _cli(migrated, "delete", "--guild", G, str(entry), *ACTOR, "--note", "dup")
    assert gone.returncode == 1 and "does not exist" in gone.stderr
    history = _cli(migrated, "history", "--guild", G, str(entry))
    assert history.returncode == 0, history.stderr
    row = history.stdout.splitlines()[1]
    assert "delete" in row and "open -> deleted" in row and "dup" in row
    assert str(STAFF) in row and "cli" in row


async def test_retry_all_previews_asks_and_reports(
        services: ProcessServices, migrated: str) -> None:
    good = [await _entry(services) for _ in range(2)]
    stale, stale_user = await _entry(services)
    other_op, _ = await _entry(services, Operation.REJECT)
    await services.transitions.apply(cmd(Operation.VERIFY, stale_user, source=Source.STAFF))
    args = ("retry-all", "--guild", G, *ACTOR, "--operation", "verify")

    dry = _cli(migrated, *args, "--dry-run")
    assert dry.returncode == 0 and "3 unresolved entries match (dry run" in dry.stdout
    declined = _cli(migrated, *args, stdin="n\n")
    assert declined.returncode == 0 and "nothing retried" in declined.stdout
    assert "3 unresolved entries match" in declined.stderr and "[y/N]" in declined.stderr
    assert await count(services.db, "remediation_actions") == 0

    done = _cli(migrated, *args, stdin="y\n")
    assert done.returncode == 0, done.stderr
    assert "3 matched: 2 resolved, 0 failed, 0 skipped" in done.stdout
    assert "1 stale" in done.stdout and "--force" in done.stdout
    for entry, _ in good:
        assert (await services.remediation.get(GUILD, entry)).status == "resolved"
    assert (await services.remediation.get(GUILD, other_op)).status == "open"

    # Forced, the stale one is replayed and refused (already verified): exit 1.
    forced = _cli(migrated, *args, "--yes", "--force", "--json")
    assert forced.returncode == 1, forced.stderr
    assert json.loads(forced.stdout) == {"matched": 1, "resolved": 0, "failed": 1,
                                         "skipped": 0, "stale": 0, "remaining": 0,
                                         "dry_run": False}
    assert await count(services.db, "remediation_actions",
                       "dead_letter_id = :id AND note LIKE 'forced%'", id=stale) == 1
    closed = _cli(migrated, "retry-all", "--guild", G, *ACTOR, "--status", "resolved")
    assert closed.returncode == 2 and "invalid choice" in closed.stderr
