"""Seeding members with a consistent ledger, and checking the ledger invariants afterwards."""

from __future__ import annotations

from typing import Any

import asyncpg

from bench.common import shortest_path
from domain.lifecycle import TRANSITIONS, State


async def seed_members(conn: asyncpg.Connection, guild_id: int, count: int,
                       states: tuple[State, ...], first_user: int = 1
                       ) -> dict[int, tuple[State, int]]:
    """Members first_user + 0..count-1; member number u (1..count) in states[u % len(states)],
    each with the ledger rows of the shortest path to that state (so version == ledger rows
    from the start).

    Returns {user_id: (state, version)}.
    """
    paths = {s: shortest_path(s) for s in states}
    ops: list[str] = []
    froms: list[str | None] = []
    tos: list[str] = []
    versions: list[int] = []
    slots: list[int] = []
    for slot, state in enumerate(states):
        for version, (op, source, to) in enumerate(paths[state], start=1):
            ops.append(op.value)
            froms.append(source.value if source else None)
            tos.append(to.value)
            versions.append(version)
            slots.append(slot)
    n = len(states)
    async with conn.transaction():
        await conn.execute(
            """INSERT INTO members (guild_id, user_id, state, version)
               SELECT $1, $6::bigint - 1 + u, (CAST($3 AS text[]))[u % $4 + 1]::member_state,
                      (CAST($5 AS int[]))[u % $4 + 1]
               FROM generate_series(1, $2) AS u""",
            guild_id, count, [s.value for s in states], n, [len(paths[s]) for s in states],
            first_user)
        await conn.execute(
            """INSERT INTO member_transitions (guild_id, user_id, version, operation, from_state,
                   to_state, source, idempotency_key, correlation_id)
               SELECT $1, $9::bigint - 1 + u, p.v, p.op::member_operation, p.fr::member_state,
                      p.t::member_state, 'bot', 'seed-' || u || '-' || p.v, 'seed'
               FROM generate_series(1, $2) AS u
               JOIN unnest($3::int[], $4::text[], $5::text[], $6::text[], $7::int[])
                    AS p(v, op, fr, t, slot) ON p.slot = u % $8
               ORDER BY u, p.v""",
            guild_id, count, versions, ops, froms, tos, slots, n, first_user)
    await conn.execute("ANALYZE members, member_transitions")
    return {first_user - 1 + u: (states[u % n], len(paths[states[u % n]]))
            for u in range(1, count + 1)}


async def check_invariants(conn: asyncpg.Connection, guild_id: int) -> dict[str, int]:
    """Violations of: version == ledger rows; versions contiguous 1..n; each row's from_state
    is the previous row's to_state and the last to_state is the member's state; every step
    allowed by domain.lifecycle.TRANSITIONS. All zero when the ledger is consistent."""
    allowed = [(op.value, src.value if src else None, to.value)
               for (op, src), to in TRANSITIONS.items()]
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        counts = await conn.fetchrow(
            """
            WITH agg AS (
              SELECT user_id, count(*) AS n, min(version) AS lo, max(version) AS hi
              FROM member_transitions WHERE guild_id = $1 GROUP BY user_id),
            last AS (
              SELECT DISTINCT ON (user_id) user_id, to_state FROM member_transitions
              WHERE guild_id = $1 ORDER BY user_id, version DESC)
            SELECT
              count(*) FILTER (WHERE a.n IS DISTINCT FROM m.version) AS version_ne_rows,
              count(*) FILTER (WHERE a.lo IS DISTINCT FROM 1
                               OR a.hi IS DISTINCT FROM m.version) AS not_contiguous,
              count(*) FILTER (WHERE l.to_state IS DISTINCT FROM m.state) AS state_ne_last_row
            FROM members m LEFT JOIN agg a USING (user_id) LEFT JOIN last l USING (user_id)
            WHERE m.guild_id = $1""", guild_id)
        broken_chain = await conn.fetchval(
            """SELECT count(*) FROM (
                 SELECT from_state, lag(to_state) OVER (PARTITION BY user_id ORDER BY version)
                        AS prev
                 FROM member_transitions WHERE guild_id = $1) s
               WHERE s.from_state IS DISTINCT FROM s.prev""", guild_id)
        not_allowed = await conn.fetchval(
            """SELECT count(*) FROM member_transitions t
               WHERE t.guild_id = $1 AND NOT EXISTS (
                 SELECT 1 FROM unnest($2::text[], $3::text[], $4::text[]) AS a(op, fr, t2)
                 WHERE a.op = t.operation::text AND a.fr IS NOT DISTINCT FROM t.from_state::text
                   AND a.t2 = t.to_state::text)""",
            guild_id, [a[0] for a in allowed], [a[1] for a in allowed], [a[2] for a in allowed])
        rows = await conn.fetchval(
            "SELECT count(*) FROM member_transitions WHERE guild_id = $1", guild_id)
    result: dict[str, Any] = dict(counts)
    return {**{k: int(v) for k, v in result.items()}, "broken_chain": int(broken_chain),
            "step_not_allowed": int(not_allowed), "ledger_rows": int(rows)}


def violations(check: dict[str, int]) -> int:
    return sum(v for k, v in check.items() if k != "ledger_rows")
