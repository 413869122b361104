"""Log-channel mirror lines, and the SQL that queues them in the outbox.

A mirror row is queued in the same transaction as the fact it reports, and only
when the guild has a log channel and its mirror level asks for that kind of fact.
Lines use mentions for readability; the delivery worker sends them with
allowed_mentions none, so nobody is pinged whatever text staff typed.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.persistence.tables import MirrorLevel

ARROW = "→"

# Which mirror levels include which kind of record.
LEVELS_FOR = {
    "remediation": [MirrorLevel.REMEDIATION.value, MirrorLevel.DEAD_LETTERS.value,
                    MirrorLevel.ALL.value],
    "dead_letter": [MirrorLevel.DEAD_LETTERS.value, MirrorLevel.ALL.value],
    "transition": [MirrorLevel.ALL.value],
}

ENQUEUE_MIRROR_SQL = text(
    """
    INSERT INTO outbox (guild_id, kind, channel_id, lane, payload)
    SELECT gs.guild_id, 'mirror', gs.log_channel_id, 'channel:' || gs.log_channel_id,
           CAST(:payload AS jsonb)
    FROM guild_settings gs
    WHERE gs.guild_id = :guild_id AND gs.log_channel_id IS NOT NULL
      AND gs.mirror_level = ANY(CAST(:levels AS mirror_level[]))
    """
)


def mirror_cte(after: str) -> str:
    """ENQUEUE_MIRROR_SQL as a CTE `mir` of a larger statement, joined to its CTE `after`:
    the mirror row is queued exactly when `after` returned a row. Parameters :g,
    :mirror_payload, :mirror_levels."""
    return f"""
    mir AS (
      INSERT INTO outbox (guild_id, kind, channel_id, lane, payload)
      SELECT gs.guild_id, 'mirror', gs.log_channel_id, 'channel:' || gs.log_channel_id,
             CAST(:mirror_payload AS jsonb)
      FROM guild_settings gs, {after}
      WHERE gs.guild_id = :g AND gs.log_channel_id IS NOT NULL
        AND gs.mirror_level = ANY(CAST(:mirror_levels AS mirror_level[]))
    )"""  # noqa: S608


def escape_markdown(value: str) -> str:
    out = []
    for ch in value:
        if ch in "\\*_~`|>#[]()-":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out).replace("@", "@\u200b")


def state_label(state: str | None) -> str:
    return state or "new"


def dead_letter_line(entry: dict[str, Any]) -> str:
    return (
        f"🟥 Dead letter #{entry['id']}: `{entry['operation']}` for <@{entry['user_id']}> "
        f"({state_label(entry['from_state'])} {ARROW} {state_label(entry['to_state'])}) "
        f"{entry['reason_code']} after {entry['attempts']} attempt(s), source {entry['source']}"
    )


def remediation_line(action: str, actor_id: int, entry: dict[str, Any], outcome: str,
                     note: str | None) -> str:
    line = (
        f"🛠️ <@{actor_id}> {action} #{entry['id']} (`{entry['operation']}` for "
        f"<@{entry['user_id']}>, {state_label(entry['from_state'])} {ARROW} "
        f"{state_label(entry['to_state'])}): {outcome}"
    )
    if note:
        line += f" — “{escape_markdown(note[:300])}”"
    return line


def transition_line(user_id: int, operation: str, from_state: str | None, to_state: str,
                    source: str, actor_id: int | None) -> str:
    by = f" by <@{actor_id}>" if actor_id else ""
    return (f"➡️ <@{user_id}> `{operation}` ({state_label(from_state)} {ARROW} {to_state}), "
            f"source {source}{by}")


async def enqueue_mirror(conn: AsyncConnection, guild_id: int, kind: str, line: str,
                         **extra: Any) -> None:
    payload = json.dumps({"line": line, "record": kind, **extra})
    await conn.execute(ENQUEUE_MIRROR_SQL, {"guild_id": guild_id, "payload": payload,
                                            "levels": LEVELS_FOR[kind]})
