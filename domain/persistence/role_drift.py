"""RoleDriftStore: what role drift repair (domain/role_drift.py) reads and queues.

Set-based, like the ingest batches (member_batches.py): the members of a batch go in as
arrays (unnest), one read statement answers all of them, one INSERT queues all their role
changes. Every statement is scoped by the guild.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text

from domain.persistence.database import Database, DriverStatement
from domain.vocabulary import State

# Per member: the stored state and version; whether the ledger shows Lifeline once moved
# the member out of `verified` (into one of :demoted, the states that take the role away);
# whether a role change of the member is still open in the outbox (the partial index
# ix_outbox_lane_open answers it).
READ = text(
    """
    SELECT i.u AS user_id, m.state, m.version,
           EXISTS (SELECT 1 FROM member_transitions t
                   WHERE t.guild_id = :g AND t.user_id = i.u
                     AND t.from_state = 'verified'
                     AND t.to_state = ANY(CAST(:demoted AS member_state[]))) AS left_verified,
           EXISTS (SELECT 1 FROM outbox o
                   WHERE o.lane = 'member:' || :g || ':' || i.u AND o.kind = 'role_sync'
                     AND o.status IN ('pending', 'retry_scheduled', 'delivering'))
             AS delivery_open
    FROM unnest(CAST(:us AS bigint[])) AS i(u)
    LEFT JOIN members m ON m.guild_id = :g AND m.user_id = i.u
    """
)

# The role changes, each only if the member is still at the version read (a member whose
# state moved since got the role change its transition implies) and the guild's verified
# role is still the one the caller compared with. The payload is a transition's role row's
# ({user_id, role_id, action}, the version it was decided at), marked as a repair.
QUEUE = text(
    """
    INSERT INTO outbox (guild_id, kind, channel_id, lane, payload)
    SELECT gs.guild_id, 'role_sync', NULL, 'member:' || m.guild_id || ':' || m.user_id,
           jsonb_build_object('user_id', m.user_id, 'role_id', gs.verified_role_id,
                              'action', i.action, 'version', m.version, 'repair', true)
    FROM unnest(CAST(:us AS bigint[]), CAST(:actions AS text[]), CAST(:versions AS integer[]))
         AS i(u, action, version)
    JOIN members m ON m.guild_id = :g AND m.user_id = i.u AND m.version = i.version
    JOIN guild_settings gs ON gs.guild_id = :g AND gs.verified_role_id = :role
    ORDER BY i.u
    RETURNING CAST(payload->>'user_id' AS bigint) AS user_id, payload->>'action' AS action
    """
)
DRIVER_READ = DriverStatement.of(READ)
DRIVER_QUEUE = DriverStatement.of(QUEUE)


@dataclass(frozen=True)
class StoredRole:
    """One member present in the guild, as Lifeline stored them."""

    user_id: int
    state: State | None  # None: no record
    version: int
    left_verified: bool  # the ledger shows Lifeline moved them out of `verified`
    delivery_open: bool  # a role change of theirs is still being delivered


@dataclass(frozen=True)
class RoleFix:
    user_id: int
    action: str  # "add" or "remove"
    version: int  # the member's version the decision was made at


class RoleDriftStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def read(self, guild_id: int, user_ids: Sequence[int],
                   demoted: Sequence[State]) -> list[StoredRole]:
        async with self.db.driver() as conn:
            rows = await conn.fetch(DRIVER_READ.sql, *DRIVER_READ.args(
                {"g": guild_id, "us": list(user_ids), "demoted": [s.value for s in demoted]}))
        return [StoredRole(r["user_id"], State(r["state"]) if r["state"] else None,
                           r["version"] or 0, r["left_verified"], r["delivery_open"])
                for r in rows]

    async def queue(self, guild_id: int, role_id: int, fixes: Sequence[RoleFix]
                    ) -> dict[int, str]:
        """Queues the fixes still valid; answers user id -> action of those queued."""
        async with self.db.driver() as conn:
            rows = await conn.fetch(DRIVER_QUEUE.sql, *DRIVER_QUEUE.args({
                "g": guild_id, "role": role_id, "us": [f.user_id for f in fixes],
                "actions": [f.action for f in fixes],
                "versions": [f.version for f in fixes]}))
        return {r["user_id"]: r["action"] for r in rows}
