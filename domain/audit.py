"""AuditReads: the remediation audit trail, read (the HTTP API's /audit, `/dlq history`).

Generic over what the rows are about: a dead letter (`target_kind='dead_letter'`, its id
in `target_id` and `dead_letter_id`) or an outbox delivery (`target_kind='delivery'`,
`target_id` the outbox row id, `dead_letter_id` NULL). Keyset pages, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.commands import check_snowflake
from domain.dead_letter_reads import parse_cursor
from domain.entries import AuditFilter, RemediationRecord
from domain.errors import InvalidInput
from domain.persistence.audit import AuditStore
from domain.persistence.tables import AuditTarget

MAX_AUDIT_LIMIT = 100


@dataclass(frozen=True)
class AuditPage:
    items: list[RemediationRecord]  # newest first
    next_cursor: str | None


def _check_id(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or not 0 < value < 2**63):
        raise InvalidInput(f"{name} must be a whole number between 1 and {2**63 - 1}")


class AuditReads:
    def __init__(self, store: AuditStore) -> None:
        self.store = store

    async def page(self, guild_id: int, *, dead_letter_id: int | None = None,
                   actor_id: int | None = None, target_kind: str | None = None,
                   target_id: int | None = None, delivery_id: int | None = None,
                   limit: int = 50, before: str | None = None) -> AuditPage:
        """The guild's audit rows matching every filter given, newest first.
        `delivery_id=N` is `target_kind='delivery'` with `target_id=N`; `target_id` needs a
        `target_kind`."""
        check_snowflake("guild_id", guild_id)
        if isinstance(limit, bool) or not isinstance(limit, int) \
                or not 1 <= limit <= MAX_AUDIT_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_AUDIT_LIMIT}")
        if target_kind is not None and target_kind not in {t.value for t in AuditTarget}:
            raise InvalidInput("target_kind must be one of: "
                               + ", ".join(t.value for t in AuditTarget))
        for name, value in (("dead_letter_id", dead_letter_id), ("target_id", target_id),
                            ("delivery_id", delivery_id)):
            _check_id(name, value)
        if actor_id is not None:
            check_snowflake("actor_id", actor_id)
        if delivery_id is not None:
            if target_kind not in (None, AuditTarget.DELIVERY.value) or \
                    target_id not in (None, delivery_id):
                raise InvalidInput("delivery_id is target_kind=delivery with that target_id: "
                                   "give one or the other")
            target_kind, target_id = AuditTarget.DELIVERY.value, delivery_id
        if target_id is not None and target_kind is None:
            raise InvalidInput("target_id needs a target_kind")
        where = AuditFilter(target_kind=target_kind, target_id=target_id,
                            dead_letter_id=dead_letter_id, actor_id=actor_id)
        rows = await self.store.page(guild_id, where, before=parse_cursor(before),
                                     limit=limit + 1)
        next_cursor = str(rows[limit - 1].id) if len(rows) > limit else None
        return AuditPage(rows[:limit], next_cursor)
