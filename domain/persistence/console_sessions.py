"""ConsoleSessionStore: the staff web console's server-side sessions (migration 0004).

A browser holds a random value in its cookie; the row is keyed by that value's SHA-256, so a
read of the table (a backup, a log of queries) gives nobody a session.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from domain.persistence.database import Database
from domain.records import ConsoleSessionRow

CREATE = text("""
    INSERT INTO console_sessions (id_hash, user_id, username, csrf_token, expires_at)
    VALUES (:h, :u, :name, :csrf, now() + make_interval(secs => :ttl))
    RETURNING expires_at
""")

# A live session, seen now (an expired one is not returned; purge removes it).
SEEN = text("""
    UPDATE console_sessions SET last_seen_at = now()
    WHERE id_hash = :h AND expires_at > now()
    RETURNING user_id, username, csrf_token, created_at, expires_at
""")

DELETE = text("DELETE FROM console_sessions WHERE id_hash = :h")

PURGE = text("""
    DELETE FROM console_sessions WHERE id_hash IN (
      SELECT id_hash FROM console_sessions WHERE expires_at <= now()
      LIMIT :limit FOR UPDATE SKIP LOCKED)
""")


class ConsoleSessionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, id_hash: str, user_id: int, username: str, csrf_token: str,
                     ttl_seconds: float) -> datetime:
        """A new session; when it expires."""
        async with self.db.transaction() as conn:
            expires: datetime = (await conn.execute(CREATE, {
                "h": id_hash, "u": user_id, "name": username, "csrf": csrf_token,
                "ttl": ttl_seconds})).scalar_one()
        return expires

    async def seen(self, id_hash: str) -> ConsoleSessionRow | None:
        async with self.db.transaction() as conn:
            row = (await conn.execute(SEEN, {"h": id_hash})).first()
        if row is None:
            return None
        return ConsoleSessionRow(row.user_id, row.username, row.csrf_token, row.created_at,
                                 row.expires_at)

    async def delete(self, id_hash: str) -> bool:
        async with self.db.transaction() as conn:
            return bool((await conn.execute(DELETE, {"h": id_hash})).rowcount)

    async def purge_expired(self, limit: int) -> int:
        async with self.db.transaction() as conn:
            return int((await conn.execute(PURGE, {"limit": limit})).rowcount)
