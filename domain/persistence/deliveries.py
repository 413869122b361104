"""DeliveryStore: the outbox as staff see it: failed deliveries, their attempts, and their
retry (audited in `remediation_actions` as target kind `delivery`, and mirrored).

The worker's side of the outbox (claiming, recording) is OutboxStore's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.lifecycle import State
from domain.mirror import delivery_retry_facts, level_values
from domain.persistence.database import Database
from domain.persistence.faults import Faults, Point
from domain.persistence.sql import ENQUEUE_MIRROR
from domain.records import (
    Delivery,
    DeliveryAttempt,
    DeliverySummary,
    DeliveryTimeline,
    RetryResult,
)
from domain.vocabulary import DeliveryStatus, OutboxKind

_COLUMNS = """o.id, o.guild_id, o.kind::text AS kind, o.status::text AS status, o.channel_id,
              o.payload, o.attempts, o.cause, o.discord_code, o.last_error, o.created_at,
              o.updated_at, o.delivered_at"""

PAGE = text(f"""
    SELECT {_COLUMNS} FROM outbox o
    WHERE o.guild_id = :g AND o.status = ANY(CAST(:statuses AS delivery_status[]))
      AND (CAST(:kind AS outbox_kind) IS NULL OR o.kind = CAST(:kind AS outbox_kind))
      AND (CAST(:before AS bigint) IS NULL OR o.id < :before)
    ORDER BY o.id DESC LIMIT :limit
""")  # noqa: S608

ONE = text(f"SELECT {_COLUMNS} FROM outbox o WHERE o.guild_id = :g AND o.id = :id")  # noqa: S608

# The newest `:last` attempts of each delivery named (one index range each, on
# ix_outbox_attempts_outbox (outbox_id, id)), for the guild's deliveries only.
ATTEMPTS = text("""
    SELECT a.* FROM outbox o CROSS JOIN LATERAL (
        SELECT x.outbox_id, x.id, x.attempt, x.started_at, x.duration_ms, x.outcome,
               x.retryable, x.http_status, x.discord_code, x.error_summary, x.worker
        FROM outbox_attempts x WHERE x.outbox_id = o.id ORDER BY x.id DESC LIMIT :last) a
    WHERE o.guild_id = :g AND o.id = ANY(CAST(:ids AS bigint[]))
    ORDER BY a.outbox_id, a.id
""")

SUMMARY = text("""
    SELECT (SELECT count(*) FROM outbox WHERE guild_id = :g
              AND status IN ('failed', 'dead_lettered')) AS failed,
           (SELECT count(*) FROM outbox WHERE guild_id = :g
              AND status IN ('pending', 'retry_scheduled', 'delivering')) AS pending,
           newest.cause, newest.channel_id, newest.last_error
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (SELECT cause, channel_id, last_error FROM outbox
                       WHERE guild_id = :g AND status IN ('failed', 'dead_lettered')
                       ORDER BY id DESC LIMIT 1) AS newest ON TRUE
""")

FAILED_COUNT = text("""
    SELECT count(*) FROM outbox WHERE guild_id = :g AND status IN ('failed', 'dead_lettered')
      AND (CAST(:kind AS outbox_kind) IS NULL OR kind = CAST(:kind AS outbox_kind))
""")

# The rows a retry takes, oldest first, locked: a second retry (or the worker) waits.
TAKE = text("""
    SELECT id, kind::text AS kind, status::text AS status, payload FROM outbox
    WHERE guild_id = :g AND status IN ('failed', 'dead_lettered')
      AND (CAST(:ids AS bigint[]) IS NULL OR id = ANY(:ids))
      AND (CAST(:kind AS text) IS NULL OR kind::text = :kind)
    ORDER BY id LIMIT :limit
    FOR UPDATE
""")

SETTINGS = text("SELECT log_channel_id, verified_role_id FROM guild_settings "
                "WHERE guild_id = :g")

MEMBER_STATES = text("SELECT user_id, state::text AS state FROM members "
                     "WHERE guild_id = :g AND user_id = ANY(:users)")

# A requeued row starts again: a new batch (and nonce), attempts from 0, no claim. A log line
# goes to the log channel as set now (its lane with it); a role change to the role as set now.
REQUEUE_MIRROR = text("""
    UPDATE outbox SET status = 'pending', attempts = 0, batch_id = NULL, locked_by = NULL,
           locked_until = NULL, next_attempt_at = now(), updated_at = now(), cause = NULL,
           discord_code = NULL, channel_id = CAST(:channel AS bigint),
           lane = 'channel:' || CAST(CAST(:channel AS bigint) AS text)
    WHERE id = ANY(:ids) AND guild_id = :g
""")

REQUEUE_ROLES = text("""
    UPDATE outbox SET status = 'pending', attempts = 0, batch_id = NULL, locked_by = NULL,
           locked_until = NULL, next_attempt_at = now(), updated_at = now(), cause = NULL,
           discord_code = NULL,
           payload = payload || jsonb_build_object('role_id', CAST(:role AS bigint))
    WHERE id = ANY(:ids) AND guild_id = :g
""")

SKIP = text("""
    UPDATE outbox SET status = 'skipped', updated_at = now(), locked_by = NULL,
           locked_until = NULL
    WHERE id = ANY(:ids) AND guild_id = :g
""")

AUDIT = text("""
    INSERT INTO remediation_actions (guild_id, target_kind, target_id, dead_letter_id,
           actor_id, source, action, outcome, status_before, status_after, note,
           error_message, correlation_id)
    SELECT :g, 'delivery', t.id, NULL, :actor, CAST(:source AS transition_source), 'retry',
           t.outcome, t.before, t.after, NULL, NULL, :corr
    FROM unnest(CAST(:ids AS bigint[]), CAST(:outcomes AS text[]), CAST(:befores AS text[]),
                CAST(:afters AS text[])) AS t(id, outcome, before, after)
""")


@dataclass(frozen=True)
class RequeuePlan:
    """A retry of failed deliveries: which (`ids`, or all of the guild's of `kind`), at most
    `limit`, by whom, and `decide`: what to do with each (see domain/deliveries.py)."""

    guild_id: int
    ids: list[int] | None
    kind: str | None
    limit: int
    actor_id: int
    source: str
    correlation_id: str
    decide: Callable[[OutboxKind, dict[str, Any], State | None, int | None, int | None], str]


def _delivery(row: Any) -> Delivery:
    payload = row.payload if isinstance(row.payload, dict) else {}
    kind = OutboxKind(row.kind)

    def as_int(key: str) -> int | None:
        value = payload.get(key)
        return int(value) if isinstance(value, int | str) and str(value).isdigit() else None

    return Delivery(
        id=row.id, guild_id=row.guild_id, kind=kind, status=DeliveryStatus(row.status),
        channel_id=row.channel_id,
        user_id=as_int("user_id") if kind is OutboxKind.ROLE_SYNC else None,
        role_id=as_int("role_id") if kind is OutboxKind.ROLE_SYNC else None,
        action=str(payload["action"]) if kind is OutboxKind.ROLE_SYNC
        and "action" in payload else None,
        record=str(payload.get("record", "line")) if kind is OutboxKind.MIRROR else None,
        attempts=row.attempts, cause=row.cause, discord_code=row.discord_code,
        last_error=row.last_error, created_at=row.created_at, updated_at=row.updated_at,
        delivered_at=row.delivered_at)


class DeliveryStore:
    def __init__(self, db: Database, faults: Faults | None = None) -> None:
        self.db = db
        self.faults = faults

    async def page(self, guild_id: int, statuses: Sequence[str], kind: str | None,
                   before: int | None, limit: int) -> list[Delivery]:
        async with self.db.autocommit() as conn:
            rows = (await conn.execute(PAGE, {"g": guild_id, "statuses": list(statuses),
                                              "kind": kind, "before": before,
                                              "limit": limit})).all()
        return [_delivery(r) for r in rows]

    async def get(self, guild_id: int, delivery_id: int) -> Delivery | None:
        async with self.db.autocommit() as conn:
            row = (await conn.execute(ONE, {"g": guild_id, "id": delivery_id})).first()
        return _delivery(row) if row is not None else None

    async def attempts(self, guild_id: int, delivery_ids: Sequence[int], last: int
                       ) -> dict[int, DeliveryTimeline]:
        """The newest `last` attempts of each of the guild's deliveries named, oldest
        first, in one query (a delivery with none, or of another guild, has none)."""
        found: dict[int, list[DeliveryAttempt]] = {i: [] for i in delivery_ids}
        async with self.db.autocommit() as conn:
            rows = (await conn.execute(ATTEMPTS, {"g": guild_id, "ids": list(delivery_ids),
                                                  "last": last + 1})).all()
        for r in rows:
            found[r.outbox_id].append(DeliveryAttempt(
                r.attempt, r.started_at, r.duration_ms, r.outcome, r.retryable, r.http_status,
                r.discord_code, r.error_summary, r.worker))
        return {i: DeliveryTimeline(a[-last:], len(a) > last) for i, a in found.items()}

    async def summary(self, guild_id: int) -> DeliverySummary:
        async with self.db.autocommit() as conn:
            row = (await conn.execute(SUMMARY, {"g": guild_id})).one()
        return DeliverySummary(int(row.failed), int(row.pending), row.cause, row.channel_id,
                               row.last_error)

    async def failed_count(self, guild_id: int, kind: str | None = None) -> int:
        async with self.db.autocommit() as conn:
            return int((await conn.execute(FAILED_COUNT, {"g": guild_id, "kind": kind})
                        ).scalar_one())

    async def requeue(self, plan: RequeuePlan) -> RetryResult:
        """Retry failed deliveries in one transaction: each is requeued, skipped as stale or
        left waiting, as `plan.decide` says; each gets an audit row, and the retry one
        mirror line."""
        g = plan.guild_id
        async with self.db.transaction() as conn:
            if self.faults is not None:
                await self.faults.enter(Point.DELIVERIES_RETRY, conn, guild_id=g,
                                        detail={"retry": plan.ids or "failed"})
            rows = (await conn.execute(TAKE, {"g": g, "ids": plan.ids, "kind": plan.kind,
                                              "limit": plan.limit + 1})).all()
            more = len(rows) > plan.limit
            rows = rows[:plan.limit]
            settings = (await conn.execute(SETTINGS, {"g": g})).first()
            channel = settings.log_channel_id if settings else None
            role = settings.verified_role_id if settings else None
            states = await self._member_states(conn, g, rows)
            decided: dict[str, list[Any]] = {"requeue": [], "stale": [], "wait": []}
            for row in rows:
                kind = OutboxKind(row.kind)
                payload = row.payload if isinstance(row.payload, dict) else {}
                user = payload.get("user_id")
                state = states.get(int(user)) if kind is OutboxKind.ROLE_SYNC \
                    and user is not None else None
                decided[plan.decide(kind, payload, state, role, channel)].append(row)
            requeue_mirror = [r.id for r in decided["requeue"] if r.kind == "mirror"]
            requeue_roles = [r.id for r in decided["requeue"] if r.kind != "mirror"]
            if requeue_mirror:
                await conn.execute(REQUEUE_MIRROR, {"ids": requeue_mirror, "g": g,
                                                    "channel": channel})
            if requeue_roles:
                await conn.execute(REQUEUE_ROLES, {"ids": requeue_roles, "g": g,
                                                   "role": role})
            stale = [r.id for r in decided["stale"]]
            if stale:
                await conn.execute(SKIP, {"ids": stale, "g": g})
            await self._audit(conn, plan, decided)
            result = RetryResult(matched=len(rows), requeued=len(decided["requeue"]),
                                 stale=len(stale), waiting=len(decided["wait"]), more=more,
                                 requeued_ids=[r.id for r in decided["requeue"]],
                                 stale_ids=stale)
            if rows:
                facts = delivery_retry_facts(plan.actor_id, [r.id for r in rows],
                                             result.matched, result.requeued, result.stale,
                                             result.waiting)
                await conn.execute(ENQUEUE_MIRROR, {
                    "guild_id": g, "payload": json.dumps(facts),
                    "levels": level_values("delivery_retry")})
        return result

    @staticmethod
    async def _member_states(conn: AsyncConnection, guild_id: int,
                             rows: Sequence[Any]) -> dict[int, State]:
        users = sorted({int(r.payload["user_id"]) for r in rows
                        if r.kind == "role_sync" and isinstance(r.payload, dict)
                        and str(r.payload.get("user_id", "")).isdigit()})
        if not users:
            return {}
        found = (await conn.execute(MEMBER_STATES, {"g": guild_id, "users": users})).all()
        return {r.user_id: State(r.state) for r in found}

    @staticmethod
    async def _audit(conn: AsyncConnection, plan: RequeuePlan,
                     decided: dict[str, list[Any]]) -> None:
        after = {"requeue": DeliveryStatus.PENDING.value, "stale": DeliveryStatus.SKIPPED.value}
        outcome = {"requeue": "requeued", "stale": "stale", "wait": "waiting"}
        ids: list[int] = []
        outcomes: list[str] = []
        befores: list[str] = []
        afters: list[str] = []
        for what, rows in decided.items():
            for r in rows:
                ids.append(r.id)
                outcomes.append(outcome[what])
                befores.append(r.status)
                afters.append(after.get(what, r.status))
        if ids:
            await conn.execute(AUDIT, {"g": plan.guild_id, "actor": plan.actor_id,
                                       "source": plan.source, "corr": plan.correlation_id,
                                       "ids": ids, "outcomes": outcomes, "befores": befores,
                                       "afters": afters})
