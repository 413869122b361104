"""What the guild's log channel is told: which records each mirror level includes, and the
facts of each record.

A mirror row is queued in the outbox in the same transaction as the fact it reports, and
only when the guild has a log channel and its mirror level asks for that kind of record.
The row keeps the facts (ids, operation, states, outcome, note), not a rendered line: the
Discord edge (bot/formatting.py) renders them when it delivers.
"""

from __future__ import annotations

from typing import Any

from domain.vocabulary import MirrorLevel

# Which mirror levels include which kind of record.
LEVELS_FOR: dict[str, tuple[MirrorLevel, ...]] = {
    "remediation": (MirrorLevel.REMEDIATION, MirrorLevel.DEAD_LETTERS, MirrorLevel.ALL),
    "delivery_retry": (MirrorLevel.REMEDIATION, MirrorLevel.DEAD_LETTERS, MirrorLevel.ALL),
    "dead_letter": (MirrorLevel.DEAD_LETTERS, MirrorLevel.ALL),
    "transition": (MirrorLevel.ALL,),
}


def level_values(record: str) -> list[str]:
    """The mirror levels that include `record`, as the database stores them."""
    return [level.value for level in LEVELS_FOR[record]]


def transition_facts(user_id: int, operation: str, from_state: str | None, to_state: str,
                     source: str, actor_id: int | None) -> dict[str, Any]:
    return {"record": "transition", "user_id": user_id, "operation": operation,
            "from_state": from_state, "to_state": to_state, "source": source,
            "actor_id": actor_id}


def dead_letter_facts(entry: dict[str, Any]) -> dict[str, Any]:
    """The facts of a new dead letter (a dict of its columns, `id` included)."""
    return {"record": "dead_letter", "dead_letter_id": entry["id"],
            "user_id": entry["user_id"], "operation": entry["operation"],
            "from_state": entry["from_state"], "to_state": entry["to_state"],
            "reason_code": entry["reason_code"], "attempts": entry["attempts"],
            "source": entry["source"]}


def remediation_facts(action: str, actor_id: int, entry: dict[str, Any], outcome: str,
                      error: str | None, note: str | None) -> dict[str, Any]:
    """The facts of a remediation: who did what (`action`: retry, resolve, dismiss,
    reopen) to which entry, how it ended (`outcome`, and the replay's error, redacted and
    cut to 200 characters), and the staff note. The entry's id, operation, member and
    states never change."""
    return {"record": "remediation", "dead_letter_id": entry["id"], "action": action,
            "actor_id": actor_id, "user_id": entry["user_id"],
            "operation": entry["operation"], "from_state": entry["from_state"],
            "to_state": entry["to_state"], "outcome": outcome,
            "error": error[:200] if error else None, "note": note}


# A delivery retry's line names at most this many deliveries (then "+N more").
DELIVERY_IDS_SHOWN = 10


def delivery_retry_facts(actor_id: int, ids: list[int], matched: int, requeued: int,
                         stale: int, waiting: int) -> dict[str, Any]:
    """The facts of a staff retry of failed deliveries (one, or all of a guild's)."""
    return {"record": "delivery_retry", "actor_id": actor_id,
            "delivery_ids": ids[:DELIVERY_IDS_SHOWN], "matched": matched,
            "requeued": requeued, "stale": stale, "waiting": waiting}
