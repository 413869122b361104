"""Retention: closed dead letters and delivered outbox rows older than RETENTION_DAYS go, in
small batches, so a purge never holds many locks or one long transaction. The audit trail
(remediation_actions) is kept. The delivery worker runs it every few minutes."""

from __future__ import annotations

from domain.persistence.outbox import Expired, OutboxStore


async def purge_expired(store: OutboxStore, retention_days: int, batch: int = 500
                        ) -> dict[str, int]:
    """Purge everything past the retention (0 keeps everything); how many rows went, by
    table ("dead_letters", "outbox")."""
    purged = {what.value: 0 for what in Expired}
    if retention_days <= 0:
        return purged
    for what in Expired:
        while True:
            deleted = await store.purge(what, retention_days, batch)
            purged[what.value] += deleted
            if deleted < batch:
                break
    return purged
