"""MemberStore: members and their ledger (member_transitions).

The hot path of every transition runs here, on the driver connection: one statement reads
the member, the ledger row of the command's idempotency key and the guild's side-effect
settings; one statement does the compare-and-set UPDATE (or the INSERT of a new member),
its ledger row and the outbox rows it implies, as CTEs (one statement, one transaction).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import asyncpg
from sqlalchemy import text

from domain.commands import LedgerEntry, MemberSnapshot, TransitionCommand
from domain.mirror import level_values
from domain.persistence.database import (
    Database,
    DriverConnection,
    DriverStatement,
    UniqueViolation,
)
from domain.persistence.faults import Faults, Point
from domain.persistence.member_batches import DRIVER_BATCH_READ, DRIVER_BATCH_WRITE
from domain.persistence.sql import mirror_cte
from domain.records import (
    KeyTaken,
    Observed,
    PlannedWrite,
    PriorTransition,
    WriteOutcome,
    Written,
)
from domain.vocabulary import Operation, Source, State, state_value

IDEMPOTENCY_CONSTRAINT = "uq_member_transitions_guild_id_user_id_idempotency_key"

READ = text(
    """
    SELECT m.state, m.version, m.updated_at,
           t.id AS t_id, t.operation AS t_operation, t.from_state AS t_from,
           t.to_state AS t_to, t.version AS t_version, t.created_at AS t_created,
           gs.log_channel_id IS NOT NULL
             AND gs.mirror_level = ANY(CAST(:mirror_levels AS mirror_level[])) AS mirror_on,
           gs.verified_role_id IS NOT NULL AS role_sync_on
    FROM (SELECT 1) AS one
    LEFT JOIN members m ON m.guild_id = :g AND m.user_id = :u
    LEFT JOIN member_transitions t
           ON t.guild_id = :g AND t.user_id = :u AND t.idempotency_key = :key
    LEFT JOIN guild_settings gs ON gs.guild_id = :g
    """
)

_LEDGER_INSERT = """
    led AS (
      INSERT INTO member_transitions (guild_id, user_id, version, operation, from_state,
                                      to_state, source, actor_id, reason, idempotency_key,
                                      correlation_id)
      SELECT w.guild_id, w.user_id, w.version, CAST(:op AS member_operation),
             CAST(:from_state AS member_state), CAST(:to_state AS member_state),
             CAST(:source AS transition_source), :actor, :reason, :key, :corr
      FROM w
      RETURNING id, version, created_at
    )"""

# Side effects queued in the same statement, so they exist exactly when the transition does.
_MIRROR_INSERT = "," + mirror_cte("led")

_ROLE_SYNC_INSERT = """,
    rs AS (
      INSERT INTO outbox (guild_id, kind, channel_id, lane, payload)
      SELECT gs.guild_id, 'role_sync', NULL, 'member:' || :g || ':' || :u,
             jsonb_build_object('user_id', :u, 'role_id', gs.verified_role_id,
                                'action', CAST(:role_action AS text),
                                'transition_id', led.id, 'version', led.version)
      FROM guild_settings gs, led
      WHERE gs.guild_id = :g AND gs.verified_role_id IS NOT NULL
    )"""

_UPDATE_CTE = """
    WITH w AS (
      UPDATE members SET state = CAST(:to_state AS member_state), version = version + 1,
                         updated_at = now()
      WHERE guild_id = :g AND user_id = :u
        AND state = CAST(:from_state AS member_state) AND version = :expected_version
      RETURNING guild_id, user_id, version, updated_at
    ),"""

_INSERT_CTE = """
    WITH w AS (
      INSERT INTO members (guild_id, user_id, state, version)
      VALUES (:g, :u, CAST(:to_state AS member_state), 1)
      ON CONFLICT (guild_id, user_id) DO NOTHING
      RETURNING guild_id, user_id, version, updated_at
    ),"""

_FINAL = """
    SELECT led.id, led.version, w.updated_at FROM led JOIN w ON w.version = led.version
"""


def build_write(new_member: bool, mirror: bool, role_sync: bool) -> Any:
    sql = (_INSERT_CTE if new_member else _UPDATE_CTE) + _LEDGER_INSERT
    if mirror:
        sql += _MIRROR_INSERT
    if role_sync:
        sql += _ROLE_SYNC_INSERT
    return text(sql + _FINAL)


# Eight statement shapes, compiled once. The hot path runs them (and the read) on the driver
# connection: SQLAlchemy's per-statement work cost more client CPU than the statements.
WRITES = {(n, m, r): build_write(n, m, r)
          for n in (False, True) for m in (False, True) for r in (False, True)}
DRIVER_READ = DriverStatement.of(READ)
DRIVER_GET = DriverStatement.of(text(
    "SELECT state, version, updated_at FROM members WHERE guild_id = :g AND user_id = :u"))
DRIVER_WRITES = {shape: DriverStatement.of(stmt) for shape, stmt in WRITES.items()}
_TRANSITION_LEVELS = level_values("transition")

HISTORY = text(
    """SELECT id, version, operation, from_state, to_state, source, actor_id, reason,
              idempotency_key, correlation_id, created_at
       FROM member_transitions WHERE guild_id = :g AND user_id = :u
       ORDER BY version DESC LIMIT :limit""")
STATES = text("SELECT user_id, state, version FROM members WHERE guild_id = :g")
# What a reconcile wrote: its ledger rows (by their reasons) since it started.
WRITTEN_SINCE = text("""
    SELECT count(*) AS transitions, count(DISTINCT user_id) AS members
    FROM member_transitions
    WHERE guild_id = :g AND created_at >= :since AND reason = ANY(:reasons)
""")


class MemberStore:
    def __init__(self, db: Database, faults: Faults | None = None) -> None:
        self.db = db
        self.faults = faults

    def session(self) -> MemberSession:
        """`async with store.session() as s:` one pooled connection for a read and the
        write that follows it; each statement is its own transaction."""
        return MemberSession(self)

    async def get(self, guild_id: int, user_id: int) -> MemberSnapshot | None:
        # A client's read before it writes: on the driver connection like the write path.
        async with self.db.driver() as conn:
            row = await conn.fetchrow(DRIVER_GET.sql, *DRIVER_GET.args(
                {"g": guild_id, "u": user_id}))
        if row is None:
            return None
        return MemberSnapshot(guild_id, user_id, State(row["state"]), row["version"],
                              row["updated_at"])

    async def history(self, guild_id: int, user_id: int, limit: int = 10
                      ) -> list[LedgerEntry]:
        """The member's ledger, newest first."""
        async with self.db.autocommit() as conn:
            rows = await conn.execute(HISTORY, {"g": guild_id, "u": user_id, "limit": limit})
            return [LedgerEntry(r.id, r.version, Operation(r.operation),
                                State(r.from_state) if r.from_state else None,
                                State(r.to_state), Source(r.source), r.actor_id, r.reason,
                                r.idempotency_key, r.correlation_id, r.created_at)
                    for r in rows]

    async def states(self, guild_id: int) -> dict[int, tuple[State, int]]:
        """Every stored member of a guild: user id -> (state, version)."""
        async with self.db.autocommit() as conn:
            rows = await conn.execute(STATES, {"g": guild_id})
            return {r.user_id: (State(r.state), r.version) for r in rows}


    async def written_since(self, guild_id: int, since: datetime,
                            reasons: list[str]) -> tuple[int, int]:
        """(transitions, members) the guild's ledger holds with one of `reasons` since."""
        async with self.db.autocommit() as conn:
            row = (await conn.execute(WRITTEN_SINCE, {"g": guild_id, "since": since,
                                                      "reasons": reasons})).one()
            return int(row.transitions), int(row.members)


class MemberSession(DriverConnection):
    """One pooled (driver) connection of the MemberStore. `read` and `write` take a batch
    of commands and answer one result each, in order. (A DriverConnection itself, not a
    wrapper of one: it runs twice per transition.)"""

    __slots__ = ("_conn", "_faults")

    def __init__(self, store: MemberStore) -> None:
        super().__init__(store.db.engine)
        self._faults = store.faults
        self._conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> MemberSession:
        self._conn = await super().__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self._conn = None
        await super().__aexit__(exc_type, exc, tb)

    async def read(self, cmds: Sequence[TransitionCommand]) -> list[Observed]:
        conn = self._conn
        assert conn is not None, "use the session inside `async with`"
        observed: list[Observed] = []
        for cmd in cmds:
            if self._faults is not None:
                await self._faults.enter(Point.MEMBERS_READ, conn, guild_id=cmd.guild_id,
                                         user_id=cmd.user_id, key=cmd.idempotency_key,
                                         operation=cmd.operation.value)
            row = await conn.fetchrow(DRIVER_READ.sql, *DRIVER_READ.args(
                {"g": cmd.guild_id, "u": cmd.user_id, "key": cmd.idempotency_key,
                 "mirror_levels": _TRANSITION_LEVELS}))
            assert row is not None  # always one row: FROM (SELECT 1) LEFT JOIN ...
            observed.append(Observed(State(row["state"]) if row["state"] else None,
                                     row["version"] or 0, row["updated_at"], _prior(row),
                                     bool(row["mirror_on"]), bool(row["role_sync_on"])))
        return observed

    async def write(self, writes: Sequence[PlannedWrite]) -> list[WriteOutcome]:
        conn = self._conn
        assert conn is not None, "use the session inside `async with`"
        outcomes: list[WriteOutcome] = []
        for planned in writes:
            cmd = planned.cmd
            if self._faults is not None and await self._faults.enter(
                    Point.MEMBERS_WRITE, conn, guild_id=cmd.guild_id, user_id=cmd.user_id,
                    key=cmd.idempotency_key, operation=cmd.operation.value,
                    detail={"from_state": planned.observed.state,
                            "to_state": planned.to_state,
                            "version": planned.observed.version}):
                outcomes.append(None)
                continue
            outcomes.append(await self._write_one(conn, planned))
        return outcomes

    async def read_batch(self, items: Sequence[tuple[int, int, str | None]]
                         ) -> list[Observed]:
        """Many members in one statement: (guild, user, idempotency key or None) each,
        answered in order, with the guild's settings (eligibility role included)."""
        conn = self._conn
        assert conn is not None, "use the session inside `async with`"
        if self._faults is not None:
            for g, u, key in items:
                await self._faults.enter(Point.MEMBERS_READ, conn, guild_id=g, user_id=u,
                                         key=key)
        rows = await conn.fetch(DRIVER_BATCH_READ.sql, *DRIVER_BATCH_READ.args(
            {"gs": [g for g, _, _ in items], "us": [u for _, u, _ in items],
             "keys": [k for _, _, k in items], "mirror_levels": _TRANSITION_LEVELS}))
        return [Observed(State(row["state"]) if row["state"] else None, row["version"] or 0,
                         row["updated_at"], _prior(row), bool(row["mirror_on"]),
                         bool(row["role_sync_on"]), row["eligibility_role_id"])
                for row in rows]

    async def write_batch(self, writes: Sequence[PlannedWrite]) -> list[WriteOutcome]:
        """Many members' compare-and-sets in one statement (one transaction), at most one
        per member; answers in order: Written, or None where the compare-and-set found the
        member changed. A taken key raises (see BATCH_WRITE: it cannot happen)."""
        conn = self._conn
        assert conn is not None, "use the session inside `async with`"
        lost: set[int] = set()
        if self._faults is not None:
            for n, planned in enumerate(writes):
                cmd = planned.cmd
                if await self._faults.enter(
                        Point.MEMBERS_WRITE, conn, guild_id=cmd.guild_id,
                        user_id=cmd.user_id, key=cmd.idempotency_key,
                        operation=cmd.operation.value,
                        detail={"from_state": planned.observed.state,
                                "to_state": planned.to_state,
                                "version": planned.observed.version}):
                    lost.add(n)
        sent = [p for n, p in enumerate(writes) if n not in lost]
        cmds = [p.cmd for p in sent]
        rows = await conn.fetch(DRIVER_BATCH_WRITE.sql, *DRIVER_BATCH_WRITE.args({
            "gs": [c.guild_id for c in cmds], "us": [c.user_id for c in cmds],
            "ops": [c.operation.value for c in cmds],
            "froms": [state_value(p.observed.state) for p in sent],
            "tos": [p.to_state.value for p in sent],
            "versions": [p.observed.version for p in sent],
            "sources": [c.source.value for c in cmds], "actors": [c.actor_id for c in cmds],
            "reasons": [c.reason for c in cmds], "keys": [c.idempotency_key for c in cmds],
            "corrs": [c.correlation_id for c in cmds],
            "mirrors": [None if p.mirror is None else json.dumps(p.mirror) for p in sent],
            "roles": [p.role_action for p in sent], "mirror_levels": _TRANSITION_LEVELS}))
        by_member = {(r[0], r[1]): Written(r[2], r[3], r[4]) for r in rows}
        return [by_member.get((p.cmd.guild_id, p.cmd.user_id)) if n not in lost else None
                for n, p in enumerate(writes)]

    @staticmethod
    async def _write_one(conn: asyncpg.Connection, planned: PlannedWrite) -> WriteOutcome:
        cmd, observed = planned.cmd, planned.observed
        new_member = observed.state is None
        mirror = planned.mirror is not None
        role_sync = planned.role_action is not None
        params: dict[str, Any] = {
            "g": cmd.guild_id, "u": cmd.user_id, "op": cmd.operation.value,
            "from_state": state_value(observed.state),
            "to_state": planned.to_state.value,
            "source": cmd.source.value, "actor": cmd.actor_id, "reason": cmd.reason,
            "key": cmd.idempotency_key, "corr": cmd.correlation_id,
        }
        if not new_member:
            params["expected_version"] = observed.version
        if mirror:
            params["mirror_payload"] = json.dumps(planned.mirror)
            params["mirror_levels"] = _TRANSITION_LEVELS
        if role_sync:
            params["role_action"] = planned.role_action
        stmt = DRIVER_WRITES[(new_member, mirror, role_sync)]
        try:
            row = await conn.fetchrow(stmt.sql, *stmt.args(params))
        except UniqueViolation as exc:
            if exc.constraint_name != IDEMPOTENCY_CONSTRAINT:
                raise
            return KeyTaken(exc)
        if row is None:
            return None
        return Written(row[0], row[1], row[2])



def _prior(row: Any) -> PriorTransition | None:
    if row["t_id"] is None:
        return None
    return PriorTransition(row["t_id"], Operation(row["t_operation"]),
                           State(row["t_from"]) if row["t_from"] else None,
                           State(row["t_to"]), row["t_version"], row["t_created"])
