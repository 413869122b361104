"""The outage spool of earlier versions (DATA_DIR/spool/events.jsonl): events it still holds
are moved into the ingest log at start-up, so an upgrade loses none of them."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

from domain.ingest.events import EventKind, MemberEvent
from domain.ingest.pipeline import Ingestion

log = logging.getLogger(__name__)

KINDS = {"join": EventKind.JOIN, "leave": EventKind.LEAVE, "ban": EventKind.BAN,
         "unban": EventKind.UNBAN}


def read_legacy_spool(directory: Path) -> list[MemberEvent]:
    """The events after the spool's read offset (a torn last line was never acknowledged)."""
    path = directory / "events.jsonl"
    if not path.exists():
        return []
    try:
        offset = int((directory / "events.offset").read_text() or 0)
    except (FileNotFoundError, ValueError):
        offset = 0
    events = []
    at = time.time()
    with open(path, "rb") as f:
        f.seek(offset)
        for raw in f.read().splitlines(keepends=True):
            if not raw.endswith(b"\n"):
                break
            try:
                data = json.loads(raw)
                kind = KINDS[data["operation"]]
                events.append(MemberEvent(kind, int(data["guild_id"]), int(data["user_id"]),
                                          at, key=str(data["idempotency_key"]),
                                          reason=data.get("reason")))
            except (ValueError, KeyError, TypeError) as exc:
                log.error("legacy spool: an unreadable event is skipped (%s): %s (the "
                          "reconcile at connect brings its member to what Discord shows)",
                          exc, raw[:300])
    return events


async def move_legacy_spool(directory: Path, ingestion: Ingestion) -> int:
    """Append the legacy spool's events to the ingest log, then remove the spool. Answers
    how many were moved; an event the log refuses stays in the spool for the next start."""
    events = read_legacy_spool(directory)
    if not events and not (directory / "events.jsonl").exists():
        return 0
    # All at once: the log's group commit writes them in a few fsyncs.
    taken = await asyncio.gather(*(ingestion.submit(event) for event in events))
    if not all(taken):
        log.error("legacy spool %s: the ingest log refused events; the spool is kept and "
                  "moved again at the next start (what was moved applies once)", directory)
        return 0
    (directory / "events.jsonl").unlink()
    (directory / "events.offset").unlink(missing_ok=True)
    if events:
        log.warning("moved %d events from the outage spool of an earlier version (%s) into "
                    "the ingest log", len(events), directory)
    return len(events)
