"""Retention: closed dead letters and delivered outbox rows older than RETENTION_DAYS go, in
small batches, so a purge never holds many locks or one long transaction. The audit trail
(remediation_actions) is kept. The delivery worker runs it every few minutes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from domain.persistence.dead_letters import DeadLetterStore
from domain.persistence.outbox import OutboxStore


async def purge_expired(outbox: OutboxStore, dead_letters: DeadLetterStore | None,
                        retention_days: int, batch: int = 500) -> dict[str, int]:
    """Purge everything past the retention (0 keeps everything); how many rows went, by
    table ("dead_letters", "outbox"). Without a dead-letter store, only the outbox."""
    purges: dict[str, Callable[[int, int], Awaitable[int]]] = {
        "outbox": outbox.purge_delivered}
    if dead_letters is not None:
        purges["dead_letters"] = dead_letters.purge_closed
    purged = {"dead_letters": 0, "outbox": 0}
    if retention_days <= 0:
        return purged
    for table, purge in purges.items():
        while True:
            deleted = await purge(retention_days, batch)
            purged[table] += deleted
            if deleted < batch:
                break
    return purged
