"""The staff web console's sessions: a random cookie value the database never holds (only
its SHA-256), a CSRF token per session, expiry, logout."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from domain.console_sessions import ConsoleSessions, session_key
from domain.errors import InvalidInput
from domain.persistence.console_sessions import ConsoleSessionStore
from domain.persistence.database import Database

USER = 4242


async def _rows(db: Database) -> list[str]:
    async with db.autocommit() as conn:
        return [str(tuple(r)) for r in (await conn.execute(text(
            "SELECT * FROM console_sessions"))).all()]


async def test_a_login_is_found_by_its_cookie_which_the_database_never_holds(
        clean_db: Database) -> None:
    sessions = ConsoleSessions(ConsoleSessionStore(clean_db))
    new = await sessions.login(USER, "  sam-staff ")
    assert len(new.cookie_value) >= 40 and new.cookie_value != new.csrf_token
    [row] = await _rows(clean_db)
    assert new.cookie_value not in row and session_key(new.cookie_value) in row
    user = await sessions.current(new.cookie_value)
    assert user is not None and (user.user_id, user.username) == (USER, "sam-staff")
    assert user.csrf_ok(new.csrf_token)
    assert not user.csrf_ok(None) and not user.csrf_ok("") and not user.csrf_ok("x" * 43)
    # Another browser's login is another session.
    other = await sessions.login(USER, "sam-staff")
    assert other.cookie_value != new.cookie_value and other.csrf_token != new.csrf_token
    assert await sessions.logout(new.cookie_value)
    assert await sessions.current(new.cookie_value) is None
    assert await sessions.current(other.cookie_value) is not None
    assert not await sessions.logout(new.cookie_value)  # already gone


async def test_an_expired_session_is_not_found_and_is_purged(clean_db: Database) -> None:
    sessions = ConsoleSessions(ConsoleSessionStore(clean_db), ttl_seconds=3600)
    old, live = await sessions.login(USER, "a"), await sessions.login(USER + 1, "b")
    async with clean_db.transaction() as conn:
        await conn.execute(text("UPDATE console_sessions SET expires_at = now() - "
                                "interval '1 second' WHERE id_hash = :h"),
                           {"h": session_key(old.cookie_value)})
    assert await sessions.current(old.cookie_value) is None
    assert await sessions.current(live.cookie_value) is not None
    assert await sessions.purge_expired() == 1
    assert len(await _rows(clean_db)) == 1


@pytest.mark.parametrize("cookie", [None, "", "nope", "x" * 201])
async def test_a_missing_or_unknown_cookie_is_nobody(clean_db: Database,
                                                     cookie: str | None) -> None:
    sessions = ConsoleSessions(ConsoleSessionStore(clean_db))
    await sessions.login(USER, "sam")
    assert await sessions.current(cookie) is None
    assert not await sessions.logout(cookie)
    assert len(await _rows(clean_db)) == 1


@pytest.mark.parametrize(("user_id", "name"), [(0, "sam"), (2**63, "sam"), (USER, "  ")])
async def test_bad_identities_are_refused_and_write_nothing(clean_db: Database, user_id: int,
                                                            name: str) -> None:
    with pytest.raises(InvalidInput):
        await ConsoleSessions(ConsoleSessionStore(clean_db)).login(user_id, name)
    assert await _rows(clean_db) == []


async def test_the_delivery_worker_purges_expired_sessions(clean_db: Database) -> None:
    from domain.metrics import CountingMetrics
    from domain.outbox import OutboxWorker, WorkerPolicy
    from domain.persistence.outbox import OutboxStore
    from tests.integration.test_outbox import RecordingDiscord

    sessions = ConsoleSessions(ConsoleSessionStore(clean_db))
    old = await sessions.login(USER, "a")
    await sessions.login(USER, "b")
    async with clean_db.transaction() as conn:
        await conn.execute(text("UPDATE console_sessions SET expires_at = now() - "
                                "interval '1 second' WHERE id_hash = :h"),
                           {"h": session_key(old.cookie_value)})
    worker = OutboxWorker(OutboxStore(clean_db), RecordingDiscord(), CountingMetrics(),
                          WorkerPolicy(), sessions=sessions)
    await worker.run_once()
    assert len(await _rows(clean_db)) == 1
