"""SQL fragments shared by the stores."""

from __future__ import annotations

from dataclasses import fields

from sqlalchemy import text

from domain.entries import DeadLetterEntry

# Every column of a dead letter, in DeadLetterEntry's order.
COLS = ", ".join(f.name for f in fields(DeadLetterEntry))

# A mirror row for the guild's log channel, queued only when the guild has one and its mirror
# level asks for this kind of record. Parameters :guild_id, :payload, :levels.
ENQUEUE_MIRROR = text(
    """
    INSERT INTO outbox (guild_id, kind, channel_id, lane, payload)
    SELECT gs.guild_id, 'mirror', gs.log_channel_id, 'channel:' || gs.log_channel_id,
           CAST(:payload AS jsonb)
    FROM guild_settings gs
    WHERE gs.guild_id = :guild_id AND gs.log_channel_id IS NOT NULL
      AND gs.mirror_level = ANY(CAST(:levels AS mirror_level[]))
    """
)


def mirror_cte(after: str, payload: str = "CAST(:mirror_payload AS jsonb)") -> str:
    """ENQUEUE_MIRROR as a CTE `mir` of a larger statement, joined to its CTE `after`: the
    mirror row is queued exactly when `after` returned a row. Parameters :g,
    :mirror_payload, :mirror_levels; `payload` is the SQL of the row's payload."""
    return f"""
    mir AS (
      INSERT INTO outbox (guild_id, kind, channel_id, lane, payload)
      SELECT gs.guild_id, 'mirror', gs.log_channel_id, 'channel:' || gs.log_channel_id,
             {payload}
      FROM guild_settings gs, {after}
      WHERE gs.guild_id = :g AND gs.log_channel_id IS NOT NULL
        AND gs.mirror_level = ANY(CAST(:mirror_levels AS mirror_level[]))
    )"""  # noqa: S608
