"""`python -m bot deliveries ...`: failed deliveries from the ops CLI, with its exit codes
(0 done, 1 refused, 2 bad input, 3 a single retry that no longer applies)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from domain.lifecycle import Operation
from tests.delivery_support import ROLE, refused_grant
from tests.helpers import GUILD, STAFF, cmd, count
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
    unknown = _cli(migrated, "retry", "--guild", g, "D999999", "--actor", str(STAFF))
    assert unknown.returncode == 1 and "does not exist in this guild" in unknown.stderr
    for bad in (("show", "--guild", g, "X1"), ("show", "--guild", g, "D١٢"),
                ("list", "--guild", g, "--kind", "email")):
        done = _cli(migrated, *bad)
        assert done.returncode == 2 and "Traceback" not in done.stderr, bad
    assert await count(services.db, "remediation_actions", "target_kind = 'delivery'") == 2
