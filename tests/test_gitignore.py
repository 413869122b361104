"""What Lifeline writes by default, and the data directories README suggests, stay out of git."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WRITTEN = (
    ".data/pg/PG_VERSION",                # the embedded PostgreSQL (DATA_DIR/pg)
    ".data/ingest/all/segment-1.log",     # the ingest log (DATA_DIR/ingest/<shards>)
    ".data/sandbox/world.json",           # --serve's sandbox world (DATA_DIR/sandbox)
    ".data/sandbox/world.json.tmp",       # ... while it is written atomically
    ".data/sandbox-alone/world.json",     # README: python -m sandbox --data-dir
    ".data-2/pg/PG_VERSION",              # README: a second DATA_DIR beside the first
    ".env",                               # settings with secrets
    ".venv/bin/python",                   # ./run's virtualenv
)
KEPT = ("bench/results.json", "bench/results.png", ".env.example")


def _ignored(paths: tuple[str, ...]) -> set[str]:
    found = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT,
                           capture_output=True, text=True, check=False)
    assert found.returncode in (0, 1), found.stderr  # 1: none of them is ignored
    return set(found.stdout.split())


def test_data_directories_and_secrets_are_ignored() -> None:
    assert _ignored(WRITTEN) == set(WRITTEN)


def test_what_is_committed_on_purpose_is_not_ignored() -> None:
    assert _ignored(KEPT) == set()
