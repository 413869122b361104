"""The batch statements of MemberStore (MemberSession.read_batch / write_batch): the ingest
workers' and reconcile's reads and writes of many members at once."""

from __future__ import annotations

from sqlalchemy import text

from domain.persistence.database import DriverStatement

# ---- batches: many members per statement (the ingest workers, reconcile) ---------------
# The same reads and writes as above, for many members at once: the inputs are arrays
# (unnest), one element per member, at most one write per member per statement. Each member
# keeps its own compare-and-set (state and version as read), its ledger row and the outbox
# rows it implies; a member whose compare-and-set fails is simply absent from the answer.
# A taken idempotency key cannot abort the batch: every ledger row comes with a version bump
# of its member, so a key taken since the read means the version moved and the
# compare-and-set of that member already failed.
BATCH_READ = text(
    """
    SELECT i.n, m.state, m.version, m.updated_at,
           t.id AS t_id, t.operation AS t_operation, t.from_state AS t_from,
           t.to_state AS t_to, t.version AS t_version, t.created_at AS t_created,
           gs.log_channel_id IS NOT NULL
             AND gs.mirror_level = ANY(CAST(:mirror_levels AS mirror_level[])) AS mirror_on,
           gs.verified_role_id IS NOT NULL AS role_sync_on,
           gs.eligibility_role_id
    FROM unnest(CAST(:gs AS bigint[]), CAST(:us AS bigint[]), CAST(:keys AS text[]))
         WITH ORDINALITY AS i(g, u, key, n)
    LEFT JOIN members m ON m.guild_id = i.g AND m.user_id = i.u
    LEFT JOIN member_transitions t
           ON t.guild_id = i.g AND t.user_id = i.u AND t.idempotency_key = i.key
    LEFT JOIN guild_settings gs ON gs.guild_id = i.g
    ORDER BY i.n
    """
)

BATCH_WRITE = text(
    """
    WITH i AS (
      SELECT * FROM unnest(
        CAST(:gs AS bigint[]), CAST(:us AS bigint[]), CAST(:ops AS member_operation[]),
        CAST(:froms AS member_state[]), CAST(:tos AS member_state[]),
        CAST(:versions AS integer[]), CAST(:sources AS transition_source[]),
        CAST(:actors AS bigint[]), CAST(:reasons AS text[]), CAST(:keys AS text[]),
        CAST(:corrs AS text[]), CAST(:mirrors AS jsonb[]), CAST(:roles AS text[]))
        AS x(g, u, op, from_state, to_state, expected_version, source, actor, reason, key,
             corr, mirror, role_action)
    ),
    upd AS (
      UPDATE members m SET state = i.to_state, version = m.version + 1, updated_at = now()
      FROM i
      WHERE i.from_state IS NOT NULL AND m.guild_id = i.g AND m.user_id = i.u
        AND m.state = i.from_state AND m.version = i.expected_version
      RETURNING m.guild_id, m.user_id, m.version, m.updated_at
    ),
    ins AS (
      INSERT INTO members (guild_id, user_id, state, version)
      SELECT i.g, i.u, i.to_state, 1 FROM i WHERE i.from_state IS NULL
      ON CONFLICT (guild_id, user_id) DO NOTHING
      RETURNING guild_id, user_id, version, updated_at
    ),
    w AS (SELECT * FROM upd UNION ALL SELECT * FROM ins),
    led AS (
      INSERT INTO member_transitions (guild_id, user_id, version, operation, from_state,
                                      to_state, source, actor_id, reason, idempotency_key,
                                      correlation_id)
      SELECT w.guild_id, w.user_id, w.version, i.op, i.from_state, i.to_state, i.source,
             i.actor, i.reason, i.key, i.corr
      FROM w JOIN i ON i.g = w.guild_id AND i.u = w.user_id
      RETURNING id, guild_id, user_id, version, created_at
    ),
    mir AS (
      INSERT INTO outbox (guild_id, kind, channel_id, lane, payload)
      SELECT gs.guild_id, 'mirror', gs.log_channel_id, 'channel:' || gs.log_channel_id,
             i.mirror
      FROM led JOIN i ON i.g = led.guild_id AND i.u = led.user_id
      JOIN guild_settings gs ON gs.guild_id = led.guild_id
      WHERE i.mirror IS NOT NULL AND gs.log_channel_id IS NOT NULL
        AND gs.mirror_level = ANY(CAST(:mirror_levels AS mirror_level[]))
      -- Lane by lane (each row takes its lane's lock; two batches take them in one order).
      ORDER BY gs.log_channel_id, led.id
    ),
    rs AS (
      INSERT INTO outbox (guild_id, kind, channel_id, lane, payload)
      SELECT gs.guild_id, 'role_sync', NULL, 'member:' || led.guild_id || ':' || led.user_id,
             jsonb_build_object('user_id', led.user_id, 'role_id', gs.verified_role_id,
                                'action', i.role_action, 'transition_id', led.id,
                                'version', led.version)
      FROM led JOIN i ON i.g = led.guild_id AND i.u = led.user_id
      JOIN guild_settings gs ON gs.guild_id = led.guild_id
      WHERE i.role_action IS NOT NULL AND gs.verified_role_id IS NOT NULL
    )
    SELECT led.guild_id, led.user_id, led.id, led.version, w.updated_at
    FROM led JOIN w ON w.guild_id = led.guild_id AND w.user_id = led.user_id
    """
)
DRIVER_BATCH_READ = DriverStatement.of(BATCH_READ)
DRIVER_BATCH_WRITE = DriverStatement.of(BATCH_WRITE)
