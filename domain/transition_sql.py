"""The SQL of a transition: the read (with guard inputs) and the write shapes.

A write is one statement (hence one transaction): the compare-and-set UPDATE (or the INSERT
of a new member), its ledger row, and the outbox rows it implies, as CTEs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from domain.mirror import mirror_cte
from domain.persistence.database import DriverStatement

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
DRIVER_GET_MEMBER = DriverStatement.of(text(
    "SELECT state, version, updated_at FROM members WHERE guild_id = :g AND user_id = :u"))
DRIVER_WRITES = {shape: DriverStatement.of(stmt) for shape, stmt in WRITES.items()}
