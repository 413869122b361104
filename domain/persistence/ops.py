"""OpsStore: what operators and probes read (health, gauges, the schema revision).

Not on any hot path: each method is one statement on an autocommit connection.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

from sqlalchemy import text

from domain.persistence.database import Database
from domain.persistence.faults import Faults
from domain.vocabulary import DeliveryStatus

IDENTITY_ALPHABET = string.digits + string.ascii_lowercase
NEW_IDENTITY = text("UPDATE installation SET identity = :identity WHERE id = 1")

# Outbox rows still waiting to reach Discord (the worker's `ix_outbox_due` statuses).
PENDING_OUTBOX_STATUSES = (DeliveryStatus.PENDING.value, DeliveryStatus.RETRY_SCHEDULED.value,
                           DeliveryStatus.DELIVERING.value)

# Open dead letters by reason from the counters (the reason is the signature's second part:
# operation/reason_code/error_type), not a count of every open entry at each scrape.
GAUGES = text(
    """
    SELECT 'dl' AS kind, split_part(signature, '/', 2) AS label, sum(n) AS n,
           NULL::float8 AS age
      FROM dead_letter_counts WHERE status IN ('open', 'retrying')
      GROUP BY split_part(signature, '/', 2)
    UNION ALL
    SELECT 'outbox', NULL, count(*), extract(epoch FROM now() - min(created_at))::float8
      FROM outbox WHERE status = ANY(CAST(:pending AS delivery_status[]))
    """
)
PING = text("SELECT 1")
SCHEMA_REVISION = text("SELECT version_num FROM alembic_version")
GUILD_UNDELIVERED = text(
    "SELECT count(*) FROM outbox WHERE guild_id = :g "
    "AND status = ANY(CAST(:pending AS delivery_status[]))")


@dataclass(frozen=True)
class OpsGauges:
    """The numbers a metrics scrape reads from the database, all guilds together."""

    open_dead_letters: dict[str, int]  # reason code -> open or retrying; absent reasons: none
    outbox_pending: int  # outbox rows not delivered yet
    outbox_oldest_pending_age_seconds: float  # of the oldest of them; 0.0 when there are none


class OpsStore:
    def __init__(self, db: Database, faults: Faults | None = None) -> None:
        self.db = db
        self.faults = faults

    async def ping(self) -> None:
        """Returns once the database answered `SELECT 1`; raises what the driver raised."""
        async with self.db.autocommit() as conn:
            await conn.execute(PING)

    async def gauges(self) -> OpsGauges:
        """Open dead letters by reason and the outbox backlog; one round trip."""
        open_by_reason: dict[str, int] = {}
        pending, oldest = 0, 0.0
        async with self.db.autocommit() as conn:
            rows = await conn.execute(GAUGES, {"pending": list(PENDING_OUTBOX_STATUSES)})
            for row in rows:
                if row.kind == "dl":
                    open_by_reason[row.label] = int(row.n)
                else:
                    pending, oldest = int(row.n), float(row.age or 0.0)
        return OpsGauges(open_by_reason, pending, max(oldest, 0.0))

    async def schema_revision(self) -> str:
        """The alembic revision the schema is at."""
        async with self.db.autocommit() as conn:
            return str((await conn.execute(SCHEMA_REVISION)).scalar_one())

    async def new_installation_identity(self) -> str:
        """Give this database a new random identity (part of every message nonce): after
        restoring a backup, whose outbox ids start again from the backup's, the lines
        queued from then on cannot repeat a nonce Discord still remembers."""
        identity = "".join(secrets.choice(IDENTITY_ALPHABET) for _ in range(6))
        async with self.db.transaction() as conn:
            await conn.execute(NEW_IDENTITY, {"identity": identity})
        return identity

    async def undelivered_outbox_rows(self, guild_id: int) -> int:
        """How many of the guild's outbox rows are still waiting to be delivered."""
        async with self.db.autocommit() as conn:
            return int((await conn.execute(GUILD_UNDELIVERED, {
                "g": guild_id, "pending": list(PENDING_OUTBOX_STATUSES)})).scalar_one())
