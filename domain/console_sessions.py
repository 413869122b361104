"""The staff web console's sessions (issue 15): who is logged in, and their CSRF token.

Login (after Discord said who the user is) creates a session: the browser gets a random
value for its cookie, the database keeps its SHA-256. Every request presents the cookie; a
state-changing one also presents the session's CSRF token, compared in constant time.
Logout deletes the row. Expired sessions are not found, and are purged in batches.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from domain.commands import check_snowflake
from domain.errors import InvalidInput
from domain.persistence.console_sessions import ConsoleSessionStore

DEFAULT_TTL_SECONDS = 12 * 3600
MAX_USERNAME = 100


def session_key(cookie_value: str) -> str:
    """What the database keeps of a cookie value."""
    return hashlib.sha256(cookie_value.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class NewSession:
    cookie_value: str  # for the browser's cookie only: never stored, never logged
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class ConsoleUser:
    user_id: int
    username: str
    csrf_token: str
    expires_at: datetime

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(
            presented.encode("utf-8", "surrogateescape"), self.csrf_token.encode())


class ConsoleSessions:
    def __init__(self, store: ConsoleSessionStore,
                 ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds

    async def login(self, user_id: int, username: str) -> NewSession:
        check_snowflake("user_id", user_id)
        name = username.strip()[:MAX_USERNAME]
        if not name:
            raise InvalidInput("a console user needs a name")
        cookie_value = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires = await self.store.create(session_key(cookie_value), user_id, name, csrf,
                                          self.ttl_seconds)
        return NewSession(cookie_value, csrf, expires)

    async def current(self, cookie_value: str | None) -> ConsoleUser | None:
        """The logged-in user of this cookie, or None (no cookie, unknown, expired)."""
        if not cookie_value or len(cookie_value) > 200:
            return None
        row = await self.store.seen(session_key(cookie_value))
        if row is None:
            return None
        return ConsoleUser(row.user_id, row.username, row.csrf_token, row.expires_at)

    async def logout(self, cookie_value: str | None) -> bool:
        if not cookie_value or len(cookie_value) > 200:
            return False
        return await self.store.delete(session_key(cookie_value))

    async def purge_expired(self, limit: int = 500) -> int:
        return await self.store.purge_expired(limit)
