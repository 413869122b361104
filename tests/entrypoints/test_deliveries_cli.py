"""`python -m bot deliveries ...`: failed deliveries from the ops CLI, with its exit codes
(0 done, 1 refused, 2 bad input, 3 a single retry that no longer applies)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from bot.formatting import nonce
from domain.lifecycle import Operation
from tests.bot.support import enqueue_records
from tests.delivery_support import ROLE, refuse_role_order, refused_grant
from tests.helpers import GUILD, STAFF, cmd, count, setup_log_channel
from tests.wiring import ProcessServices

ROOT = Path(__file__).resolve().parents[2]


def env_with(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    env.update(PYTHONPATH=str(ROOT), LOG_LEVEL="WARNING", **extra)
    return env


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", "deliveries", *args], cwd=ROOT,
                          env=env_with(DATABASE_URL=url), capture_output=True, text=True,
                          timeout=120)


async def test_deliveries_cli_lists_shows_and_retries(services: ProcessServices,
                                                      migrated: str) -> None:
    user, delivery = await refused_grant(services)
    moved, stale = await refused_grant(services)
    await services.transitions.apply(cmd(Operation.REVERIFY, moved))
    g = str(GUILD)
    listed = _cli(migrated, "list", "--guild", g)
    assert listed.returncode == 0, listed.stderr
    assert f"D{delivery}" in listed.stdout and "role_below" in listed.stdout
    shown = json.loads(_cli(migrated, "show", "--guild", g, f"D{delivery}", "--json").stdout)
    assert shown["delivery"]["user_id"] == str(user)
    assert shown["delivery"]["role_id"] == str(ROLE)
    assert shown["cause_text"].startswith("Lifeline's role is below the verified role")
    assert shown["attempts"][0]["discord_code"] == 50013
    text = _cli(migrated, "show", "--guild", g, str(delivery)).stdout
    assert "http 403 code 50013" in text and "final" in text

    no_longer = _cli(migrated, "retry", "--guild", g, f"D{stale}", "--actor", str(STAFF))
    assert no_longer.returncode == 3 and "1 stale" in no_longer.stdout, no_longer.stdout
    retried = _cli(migrated, "retry-failed", "--guild", g, "--actor", str(STAFF))
    assert retried.returncode == 0 and "1 requeued" in retried.stdout, retried.stdout
    assert f"D{delivery} " not in _cli(migrated, "list", "--guild", g).stdout  # not failed
    assert f"D{delivery} " in _cli(migrated, "list", "--guild", g, "--status", "all").stdout
    requeued = _cli(migrated, "show", "--guild", g, f"D{delivery}").stdout
    assert "cause:" not in requeued and "http 403 code 50013" in requeued, requeued
    assert await refuse_role_order(services) >= 1  # a second round for it
    again = _cli(migrated, "show", "--guild", g, f"D{delivery}").stdout.splitlines()
    rounds = [line.split()[2] for line in again if line.startswith("  20")]
    assert rounds == ["#1", "#1"] and again[-2] == "  -- queued again: attempts count from 1", again
    unknown = _cli(migrated, "retry", "--guild", g, "D999999", "--actor", str(STAFF))
    assert unknown.returncode == 1 and "does not exist in this guild" in unknown.stderr
    for bad in (("show", "--guild", g, "X1"), ("show", "--guild", g, "D١٢"),
                ("list", "--guild", g, "--kind", "email")):
        done = _cli(migrated, *bad)
        assert done.returncode == 2 and "Traceback" not in done.stderr, bad
    assert await count(services.db, "remediation_actions", "target_kind = 'delivery'") == 2


async def test_migrate_new_identity_changes_the_nonces_of_lines_from_then_on(
        services: ProcessServices, migrated: str) -> None:
    """After restoring a backup (ids start again from the backup's), staff give the database
    a new identity: the next lines' nonces differ from those of the same ids before."""
    await setup_log_channel(services.db)
    await enqueue_records(services.db, GUILD, [1])
    store = services.services.stores.outbox
    [[before]] = await store.claim("w1", lanes=1, lock_seconds=60, max_batch=lambda _: 1,
                                   take=lambda rows: 1)
    done = subprocess.run([sys.executable, "-m", "bot", "migrate", "--new-identity"],
                          cwd=ROOT, env=env_with(DATABASE_URL=migrated), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "new installation identity" in done.stdout
    async with services.db.transaction() as conn:  # the claim expired: taken over
        await conn.execute(text("UPDATE outbox SET locked_until = now() - interval '1 s'"))
    [[after]] = await store.claim("w2", lanes=1, lock_seconds=60, max_batch=lambda _: 1,
                                  take=lambda rows: 1)
    assert after.id == before.id and after.installation != before.installation
    assert nonce([after]) != nonce([before]) and len(nonce([after])) <= 25
