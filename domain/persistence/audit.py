"""AuditStore: reading the remediation audit trail (`remediation_actions`).

The rows are written with the actions they record, in the same statement (dead_letters.py
for dead letters; deliveries write their own). Reads are keyset pages, newest first, over
the indexes of migration 0003: (guild, target kind, target id, id), (guild, actor, id),
(guild, id). Any target kind: a dead letter's rows and a delivery's read the same way.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from domain.entries import AuditFilter, RemediationRecord
from domain.persistence.database import Database

COLUMNS = ("id, target_kind, target_id, dead_letter_id, actor_id, source::text AS source, "
           "action, outcome, status_before, status_after, note, error_message, "
           "correlation_id, created_at")

HISTORY = text(f"SELECT {COLUMNS} FROM remediation_actions "  # noqa: S608
               "WHERE guild_id = :g AND dead_letter_id = :id ORDER BY id")


class AuditStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def history(self, guild_id: int, dead_letter_id: int) -> list[RemediationRecord]:
        """A dead letter's audit trail, oldest first (what `show` lists)."""
        async with self.db.autocommit() as conn:
            rows = await conn.execute(HISTORY, {"g": guild_id, "id": dead_letter_id})
            return [RemediationRecord.from_mapping(r._mapping) for r in rows]

    async def page(self, guild_id: int, where: AuditFilter, *, before: int | None,
                   limit: int) -> list[RemediationRecord]:
        """Up to `limit` rows of the guild matching `where`, newest first, ids below
        `before`."""
        clauses = ["guild_id = :g"]
        params: dict[str, Any] = {"g": guild_id, "limit": limit}
        for column in ("target_kind", "target_id", "dead_letter_id", "actor_id"):
            value = getattr(where, column)
            if value is not None:
                clauses.append(f"{column} = :{column}")
                params[column] = value
        if before is not None:
            clauses.append("id < :before")
            params["before"] = before
        async with self.db.autocommit() as conn:
            rows = await conn.execute(text(
                f"SELECT {COLUMNS} FROM remediation_actions "  # noqa: S608
                f"WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT :limit"), params)
            return [RemediationRecord.from_mapping(r._mapping) for r in rows]
