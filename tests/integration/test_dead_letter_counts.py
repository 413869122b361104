"""dead_letter_counts, kept by triggers on dead_letters, against a GROUP BY of the entries.

Every writer path runs for real (the recorder through the transition service, retry,
retry_group, resolve, dismiss, reopen, retention, bulk SQL on concurrent connections), and
afterwards the counters must equal a count of the rows, for every guild, signature and
status. The drift check itself is shown to fail when any one trigger is missing.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.entries import GroupRetryResult, SignatureCount, signature_parts
from domain.errors import TransitionDeadLettered
from domain.lifecycle import Operation, Source, State
from domain.outbox import purge_expired
from domain.persistence.database import Database
from domain.remediation import STALE_CLAIM_SECONDS
from tests.helpers import (
    GUILD,
    OTHER_GUILD,
    STAFF,
    cmd,
    count,
    drive,
    next_user,
    setup_log_channel,
)
from tests.wiring import ProcessServices

THIRD_GUILD = 333_333_333_333_333_333
VERIFY_SIG = "verify/retries_exhausted/WriteConflict"
REJECT_SIG = "reject/retries_exhausted/WriteConflict"
TRIGGERS = ("dead_letter_counts_insert", "dead_letter_counts_update",
            "dead_letter_counts_delete", "dead_letter_counts_truncate")

# (guild, signature, status) whose counter (summed over the slots) differs from the rows.
_DRIFT = text(
    """WITH counted AS (SELECT guild_id, signature, status, sum(n) AS n
                        FROM dead_letter_counts GROUP BY guild_id, signature, status),
            actual AS (SELECT guild_id, signature, status, count(*) AS n
                       FROM dead_letters GROUP BY guild_id, signature, status)
       SELECT guild_id, signature, status::text AS status, coalesce(counted.n, 0) AS counted,
              coalesce(actual.n, 0) AS actual
       FROM counted FULL JOIN actual USING (guild_id, signature, status)
       WHERE coalesce(counted.n, 0) <> coalesce(actual.n, 0)
       ORDER BY guild_id, signature, status""")

# RemediationService.stats() before the counters: every entry of the guild, counted.
_OLD_STATS = text(
    """SELECT signature, status::text AS status, n,
              coalesce(sum(n) FILTER (WHERE status IN ('open', 'retrying')) OVER bysig, 0)
                AS open,
              sum(n) OVER bysig AS total
       FROM (SELECT signature, status, count(*) AS n FROM dead_letters WHERE guild_id = :g
             GROUP BY signature, status) AS per
       WINDOW bysig AS (PARTITION BY signature)
       ORDER BY open DESC, total DESC, signature""")

# RemediationService.signatures() before the counters.
_OLD_SIGNATURES = text(
    """SELECT signature, min(operation::text) AS operation,
              min(reason_code::text) AS reason_code, count(*) AS open, count(*) AS total
       FROM dead_letters WHERE guild_id = :g AND status = 'open' AND signature LIKE :prefix
       GROUP BY signature ORDER BY count(*) DESC, signature LIMIT :limit""")

# Bulk rows without the services: `sigs` signatures, every status, user ids from :u.
BULK_INSERT = text(
    """INSERT INTO dead_letters (guild_id, user_id, operation, reason_code, error_type,
           error_message, attempts, source, idempotency_key, correlation_id, payload,
           signature, status)
       SELECT :g, :u + i, 'verify', 'retries_exhausted', 'E' || (i % :sigs), 'm', 1, 'bot',
              md5(random()::text), 'c', '{}', 'verify/retries_exhausted/E' || (i % :sigs),
              CAST((ARRAY['open', 'retrying', 'resolved', 'dismissed'])[1 + (i / :sigs) % 4]
                   AS dead_letter_status)
       FROM generate_series(1, :n) AS i""")


async def drift(conn: AsyncConnection) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await conn.execute(_DRIFT)]


async def db_drift(db: Database) -> list[tuple[Any, ...]]:
    async with db.autocommit() as conn:  # one statement: one snapshot
        return await drift(conn)


async def old_stats(db: Database, guild_id: int, top: int
                    ) -> tuple[dict[str, int], list[SignatureCount]]:
    """by_status and by_signature as stats() computed them before the counters: from the
    rows."""
    by_status = {s: 0 for s in ("open", "retrying", "resolved", "dismissed")}
    by_signature: builtins.list[SignatureCount] = []
    async with db.autocommit() as conn:
        for r in await conn.execute(_OLD_STATS, {"g": guild_id}):
            by_status[r.status] += r.n
            if len(by_signature) < top and (not by_signature
                                            or by_signature[-1].signature != r.signature):
                operation, reason_code = signature_parts(r.signature)
                by_signature.append(SignatureCount(r.signature, operation, reason_code,
                                                   int(r.open), int(r.total)))
    return by_status, by_signature


async def old_signatures(db: Database, guild_id: int, prefix: str, limit: int
                         ) -> list[SignatureCount]:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    async with db.autocommit() as conn:
        rows = await conn.execute(_OLD_SIGNATURES, {"g": guild_id, "prefix": escaped,
                                                    "limit": limit})
        return [SignatureCount(r.signature, r.operation, r.reason_code, r.open, r.total)
                for r in rows]


@contextlib.asynccontextmanager
async def losing_writes(services: ProcessServices) -> AsyncIterator[None]:
    """Every compare-and-set of a transition loses (the services' fault seam): each apply()
    ends in a real dead letter."""
    services.faults.lose_cas()
    try:
        yield
    finally:
        services.faults.clear()


async def dead_letter(services: ProcessServices, user: int, op: Operation, guild: int) -> int:
    with pytest.raises(TransitionDeadLettered) as info:
        await services.transitions.apply(cmd(op, user, guild, source=Source.API))
    return info.value.dead_letter_id


async def assert_stats_match_rows(services: ProcessServices, guild_id: int) -> None:
    for top in (1, 2, 10, 1000):
        stats = await services.remediation.stats(guild_id, top)
        assert (stats.by_status, stats.by_signature) == \
            await old_stats(services.db, guild_id, top)
        assert (stats.oldest_open_age_seconds is None) == (stats.by_status["open"] == 0)
    for prefix, limit in (("", 25), ("", 1), ("ver", 25), ("reject/", 25), ("x", 25)):
        assert await services.remediation.signatures(guild_id, prefix, limit) == \
            await old_signatures(services.db, guild_id, prefix, limit)
    await assert_list_totals_match_rows(services, guild_id)


async def assert_list_totals_match_rows(services: ProcessServices, guild_id: int) -> None:
    """list()'s total, read from the counters for status / operation / signature filters,
    equals a count of the matching rows, whatever count_limit says."""
    statuses = (None, "unresolved", "all", "open", "retrying", "resolved", "dismissed")
    selects = {None: ("open", "retrying"), "unresolved": ("open", "retrying"),
               "all": ("open", "retrying", "resolved", "dismissed")}
    operations = (None, "verify", "reject", "start_onboarding")
    signatures = (None, VERIFY_SIG, REJECT_SIG, "verify/retries_exhausted/E1")
    async with services.db.autocommit() as conn:
        rows = [tuple(r) for r in await conn.execute(text(
            "SELECT status::text, operation::text, signature FROM dead_letters "
            "WHERE guild_id = :g"), {"g": guild_id})]
    for status in statuses:
        for operation in operations:
            for signature in signatures:
                page = await services.remediation.page(
                    guild_id, status=status, operation=operation, signature=signature,
                    limit=1, count_limit=1)
                expected = sum(1 for st, op, sig in rows
                               if st in selects.get(status, (status,))
                               and operation in (None, op)
                               and signature in (None, sig))
                assert (page.total, page.total_exact) == (expected, True), \
                    (status, operation, signature)


async def test_counts_stay_exact_through_every_writer_path(services: ProcessServices) -> None:
    db, remediation = services.db, services.remediation
    guilds = (GUILD, OTHER_GUILD)
    for guild in guilds:
        await setup_log_channel(services.db, guild)
    users = {guild: [next_user() for _ in range(24)] for guild in guilds}
    await asyncio.gather(*(drive(services, user, State.VERIFICATION_PENDING, guild)
                           for guild in guilds for user in users[guild]))
    # Recorded concurrently by the transition service: 16 verify + 8 reject per guild.
    async with losing_writes(services):
        recorded = await asyncio.gather(*(
            dead_letter(services, user, Operation.VERIFY if i < 16 else Operation.REJECT,
                        guild)
            for guild in guilds for i, user in enumerate(users[guild])))
    ids = {guild: recorded[k * 24:(k + 1) * 24] for k, guild in enumerate(guilds)}
    assert await db_drift(db) == []
    # Two members leave: their (forced) verify replays fail and the entries go back to open.
    for user in users[GUILD][:2]:
        await services.transitions.apply(cmd(Operation.LEAVE, user, GUILD))
    # On concurrent connections at once: retry_group of 16 entries (8 at a time), and
    # resolves, dismisses and single retries in both guilds.
    other = ids[OTHER_GUILD]
    group, *_ = await asyncio.gather(
        remediation.retry_group(GUILD, VERIFY_SIG, STAFF, force=True),
        *(remediation.dismiss(GUILD, i, STAFF, "noise") for i in ids[GUILD][16:20]),
        *(remediation.resolve(GUILD, i, STAFF, "by hand") for i in ids[GUILD][20:22]),
        *(remediation.retry(OTHER_GUILD, i, STAFF) for i in other[:6]),
        *(remediation.dismiss(OTHER_GUILD, i, STAFF, "noise") for i in other[16:24]),
        *(remediation.resolve(OTHER_GUILD, i, STAFF, "by hand") for i in other[6:10]))
    assert isinstance(group, GroupRetryResult)
    assert (group.total, group.resolved, group.failed) == (16, 14, 2)
    assert await db_drift(db) == []
    # Reopen a dismissed and a resolved entry; leave one claimed (retrying) as a crashed
    # retry would.
    await remediation.reopen(GUILD, ids[GUILD][16], STAFF, note="was not noise")
    await remediation.reopen(OTHER_GUILD, other[6], STAFF)
    assert await services.stores.dead_letters.claim(
        OTHER_GUILD, other[10], STALE_CLAIM_SECONDS) is not None
    # Retention: closed entries last changed 40 days ago go, in batches of 3.
    async with db.transaction() as conn:
        aged = (await conn.execute(text(
            "UPDATE dead_letters SET updated_at = now() - interval '40 days' "
            "WHERE status IN ('resolved', 'dismissed') AND id % 2 = 0"))).rowcount
    purged = await purge_expired(services.stores.outbox, services.stores.dead_letters, 30,
                                 batch=3)
    assert purged["dead_letters"] == aged > 3
    # Every kind of change happened, and the counters still equal the rows.
    async with db.autocommit() as conn:
        statuses: dict[str, int] = dict((await conn.execute(text(
            "SELECT status::text, count(*) FROM dead_letters GROUP BY status"))).all())
        slots = (await conn.execute(text(
            "SELECT count(DISTINCT slot) FROM dead_letter_counts"))).scalar_one()
    assert set(statuses) == {"open", "retrying", "resolved", "dismissed"}, statuses
    assert slots > 1  # concurrent sessions wrote to different counter rows
    # A guild of bulk-loaded rows: 4 signatures with equal counts, ranked by name, and a
    # fifth whose entries are all gone (its counters are 0).
    async with db.transaction() as conn:
        await conn.execute(BULK_INSERT, {"g": THIRD_GUILD, "u": 1, "sigs": 5, "n": 40})
        await conn.execute(text("DELETE FROM dead_letters WHERE guild_id = :g "
                                "AND signature LIKE '%/E4'"), {"g": THIRD_GUILD})
    assert await db_drift(db) == []
    for guild in (*guilds, THIRD_GUILD):
        await assert_stats_match_rows(services, guild)
    stats = await remediation.stats(OTHER_GUILD)
    assert stats.by_status["retrying"] == 1 and sum(stats.by_status.values()) == \
        await count(db, "dead_letters", "guild_id = :g", g=OTHER_GUILD)


async def test_concurrent_bulk_writers_on_shared_counters_stay_exact(clean_db: Database
                                                                     ) -> None:
    """8 sessions insert, re-status and delete their own rows, many keys per statement, all
    on the same (guild, signature, status) keys: no deadlock, no lost update."""
    async def writer(w: int) -> int:
        rng = random.Random(w)
        statements = 0
        async with clean_db.autocommit() as conn:  # one backend (one slot) per writer
            for _ in range(12):
                guild = rng.choice((GUILD, OTHER_GUILD))
                await conn.execute(BULK_INSERT, {"g": guild, "u": w * 1_000_000,
                                                  "sigs": 5, "n": rng.randint(5, 40)})
                await conn.execute(text(
                    """UPDATE dead_letters SET status = CAST((ARRAY['open', 'retrying',
                           'resolved', 'dismissed'])[1 + floor(random() * 4)::int]
                           AS dead_letter_status)
                       WHERE user_id / 1000000 = :w AND random() < 0.5"""), {"w": w})
                await conn.execute(text(
                    "DELETE FROM dead_letters WHERE user_id / 1000000 = :w "
                    "AND random() < 0.2"), {"w": w})
                statements += 3
        return statements

    done = await asyncio.gather(*(writer(w) for w in range(1, 9)))
    assert sum(done) == 8 * 36
    assert await count(clean_db, "dead_letters") > 0
    assert await db_drift(clean_db) == []
    async with clean_db.autocommit() as conn:
        slots = (await conn.execute(text(
            "SELECT count(DISTINCT slot) FROM dead_letter_counts"))).scalar_one()
    assert slots > 1


async def test_truncate_empties_the_counts(services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    async with losing_writes(services):
        await dead_letter(services, user, Operation.VERIFY, GUILD)
    assert await count(services.db, "dead_letter_counts") == 1
    async with services.db.transaction() as conn:
        await conn.execute(text("TRUNCATE dead_letters"))
    assert await count(services.db, "dead_letter_counts") == 0
    stats = await services.remediation.stats(GUILD)
    assert sum(stats.by_status.values()) == 0 and stats.by_signature == []


WRITES = {
    "dead_letter_counts_insert": "INSERT INTO dead_letters (guild_id, user_id, operation, "
        "reason_code, error_type, error_message, attempts, source, idempotency_key, "
        "correlation_id, payload, signature, status) SELECT guild_id, user_id, operation, "
        "reason_code, error_type, error_message, attempts, source, idempotency_key, "
        "correlation_id, payload, signature, status FROM dead_letters",
    "dead_letter_counts_update": "UPDATE dead_letters SET status = 'dismissed' "
                                 "WHERE status = 'open'",
    "dead_letter_counts_delete": "DELETE FROM dead_letters WHERE status = 'open'",
    "dead_letter_counts_truncate": "TRUNCATE dead_letters",
}


@pytest.mark.parametrize("trigger", TRIGGERS)
async def test_the_drift_check_fails_without_any_one_trigger(clean_db: Database,
                                                             trigger: str) -> None:
    async with clean_db.transaction() as conn:
        await conn.execute(BULK_INSERT, {"g": GUILD, "u": 1, "sigs": 3, "n": 24})
    async with clean_db.engine.connect() as conn:
        await conn.begin()
        # With the trigger: the write keeps the counts exact.
        savepoint = await conn.begin_nested()
        await conn.execute(text(WRITES[trigger]))
        assert await drift(conn) == []
        await savepoint.rollback()
        # Without it (dropped in this transaction only): the same write is caught.
        await conn.execute(text(f"DROP TRIGGER {trigger} ON dead_letters"))
        await conn.execute(text(WRITES[trigger]))
        assert await drift(conn) != []
        await conn.rollback()
    assert await db_drift(clean_db) == []


async def test_concurrent_group_retries_with_mixed_outcomes_neither_deadlock_nor_drift(
        clean_db: Database) -> None:
    """Two retry-groups of one signature at once (32 workers, so sessions share counter
    slots), each batch mixing replays that succeed (retrying -> resolved) and fail (retrying
    -> open) and writing its outcomes in one transaction: the counter rows of several
    statuses must be locked in one order, or two sessions of a slot deadlock."""
    services, other = ProcessServices(clean_db), ProcessServices(clean_db)
    for s in (services, other):  # 32 sessions for 16 slots: some share one
        s.remediation.group_concurrency = 16
    users = [next_user() for _ in range(32 * 16)]
    await asyncio.gather(*(drive(services, u, State.VERIFICATION_PENDING, GUILD)
                           for u in users))
    async with losing_writes(services):
        await asyncio.gather(*(dead_letter(services, u, Operation.VERIFY, GUILD)
                               for u in users))
    # Half the members, at random, leave: their verify replays fail and go back to open, so
    # batches start with either outcome.
    leaving = random.Random(7).sample(users, len(users) // 2)
    await asyncio.gather(*(services.transitions.apply(cmd(Operation.LEAVE, u, GUILD))
                           for u in leaving))
    first, second = await asyncio.gather(
        services.remediation.retry_group(GUILD, VERIFY_SIG, STAFF, force=True),
        other.remediation.retry_group(GUILD, VERIFY_SIG, STAFF, force=True))
    # Each success happened once; a failure may be retried again by the other group once
    # it is open again.
    assert first.resolved + second.resolved == len(users) // 2
    assert first.failed + second.failed >= len(users) // 2
    async with clean_db.autocommit() as conn:
        by_status: dict[str, int] = dict((await conn.execute(text(
            "SELECT status::text, count(*) FROM dead_letters GROUP BY 1"))).all())
    assert by_status == {"resolved": len(users) // 2, "open": len(users) // 2}
    assert await count(clean_db, "member_transitions", "operation = 'verify'") == \
        len(users) // 2
    assert await db_drift(clean_db) == []
    async with clean_db.autocommit() as conn:
        slots = (await conn.execute(text(
            "SELECT count(DISTINCT slot) FROM dead_letter_counts WHERE status = 'resolved'"
        ))).scalar_one()
    assert slots > 1
