"""BulkJobStore: console bulk retries and their progress (migration 0005)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from domain.persistence.database import Database
from domain.records import BulkJobRow

CREATE = text("""
    INSERT INTO bulk_jobs (guild_id, actor_id, kind, filters, force)
    VALUES (:g, :actor, 'retry_all', CAST(:filters AS jsonb), :force) RETURNING id
""")
PROGRESS = text("""
    UPDATE bulk_jobs SET done = :done, total = :total, resolved = :resolved,
           updated_at = now()
    WHERE id = :id AND status = 'running'
""")
FINISH = text("""
    UPDATE bulk_jobs SET status = :status, done = :done, total = :total,
           resolved = :resolved, failed = :failed, skipped = :skipped, stale = :stale,
           remaining = :remaining, error = :error, updated_at = now(), finished_at = now()
    WHERE id = :id
""")
GET = text("SELECT * FROM bulk_jobs WHERE guild_id = :g AND id = :id")


class BulkJobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, guild_id: int, actor_id: int, filters: dict[str, Any],
                     force: bool) -> int:
        async with self.db.transaction() as conn:
            job_id: int = (await conn.execute(CREATE, {
                "g": guild_id, "actor": actor_id, "filters": json.dumps(filters),
                "force": force})).scalar_one()
        return job_id

    async def progress(self, job_id: int, done: int, total: int, resolved: int) -> None:
        async with self.db.autocommit() as conn:
            await conn.execute(PROGRESS, {"id": job_id, "done": done, "total": total,
                                          "resolved": resolved})

    async def finish(self, job_id: int, **values: Any) -> None:
        params = {"status": "done", "done": 0, "total": 0, "resolved": 0, "failed": 0,
                  "skipped": 0, "stale": 0, "remaining": 0, "error": None, **values,
                  "id": job_id}
        async with self.db.autocommit() as conn:
            await conn.execute(FINISH, params)

    async def get(self, guild_id: int, job_id: int) -> BulkJobRow | None:
        async with self.db.autocommit() as conn:
            row = (await conn.execute(GET, {"g": guild_id, "id": job_id})).first()
        return BulkJobRow.from_mapping(row._mapping) if row is not None else None
