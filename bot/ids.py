"""Discord ids are strings in every JSON answer (JavaScript numbers lose digits past 2^53):
the fields named like Discord ids, wherever they sit, become strings of digits."""

from __future__ import annotations

from typing import Any

DISCORD_ID_FIELDS = frozenset({"guild_id", "user_id", "actor_id", "resolved_by",
                               "channel_id", "role_id", "log_channel_id", "verified_role_id",
                               "eligibility_role_id"})


def discord_ids_as_strings(value: Any) -> Any:
    """A copy of `value` (dicts and lists, any depth) with every Discord id field a string.
    Other ids (a dead letter's `id`, a transition's) stay numbers."""
    if isinstance(value, dict):
        return {k: str(v) if k in DISCORD_ID_FIELDS and isinstance(v, int)
                and not isinstance(v, bool) else discord_ids_as_strings(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [discord_ids_as_strings(v) for v in value]
    if isinstance(value, frozenset | set):
        return [discord_ids_as_strings(v) for v in sorted(value)]
    return value
