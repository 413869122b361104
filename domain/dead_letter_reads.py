"""Reading dead letters: pages, one entry with its history, stats, signatures.

`DeadLetterReads` is the reading half of RemediationService (domain/remediation.py), which
adds the actions. Totals and counts come from `dead_letter_counts` where they can.
"""

from __future__ import annotations

from typing import Any

from domain.commands import MAX_SNOWFLAKE, check_snowflake
from domain.entries import (
    DeadLetterEntry,
    DeadLetterFilter,
    Page,
    RemediationRecord,
    SignatureCount,
    Stats,
    signature_parts,
)
from domain.errors import InvalidInput, NotFound
from domain.persistence.audit import AuditStore
from domain.persistence.dead_letters import DeadLetterStore
from domain.vocabulary import DeadLetterStatus, Operation, Source

MAX_LIMIT = 100
# The status filter's two words besides a status: `unresolved` (open and retrying, what
# every door lists when no status is given) and `all`.
UNRESOLVED = "unresolved"
ALL = "all"
UNRESOLVED_STATUSES = (DeadLetterStatus.OPEN.value, DeadLetterStatus.RETRYING.value)
ORDERS = ("newest", "oldest")


def parse_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    # ASCII digits only ("²".isdigit() is true) and within bigint, or the query fails.
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 19 \
            or int(cursor) > MAX_SNOWFLAKE:
        raise InvalidInput("cursor is not valid: pass the next_cursor of a previous page")
    return int(cursor)


class DeadLetterReads:
    def __init__(self, store: DeadLetterStore, retention_days: int = 30, *,
                 audit: AuditStore | None = None) -> None:
        self.store = store
        self.retention_days = retention_days
        self.audit = audit or AuditStore(store.db)

    async def page(self, guild_id: int, *, status: str | None = None,
                   operation: str | None = None, source: str | None = None,
                   signature: str | None = None, user_id: int | None = None,
                   limit: int = 20, cursor: str | None = None,
                   with_total: bool = True, id_prefix: str | None = None,
                   count_limit: int | None = None, order: str = "newest") -> Page:
        """A page, newest first (`order="oldest"`: oldest first); `total` counts every
        match (-1 without `with_total`). Without a status, the unresolved entries (open and
        retrying); `status="all"`, every status.

        Filtered by status, operation and/or signature only (what /dlq list and the web
        app's queue views ask), the total is exact and cheap (per-signature counters).
        Filtered by source, user or id prefix, it counts the matching entries; with
        `count_limit=N` that count stops after N + 1 matches and `total_exact` is false past
        N.
        """
        check_snowflake("guild_id", guild_id)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
        if count_limit is not None and (isinstance(count_limit, bool)
                                        or not isinstance(count_limit, int) or count_limit < 1):
            raise InvalidInput("count_limit must be a whole number >= 1")
        where = entry_filter(status, operation, source, signature, user_id, id_prefix, order)
        items, total, exact = await self.store.page(
            guild_id, where, before=parse_cursor(cursor), limit=limit + 1,
            count_limit=count_limit, with_total=with_total)
        next_cursor = str(items[limit - 1].id) if len(items) > limit else None
        return Page(items[:limit], next_cursor, total, exact)

    async def show(self, guild_id: int, entry_id: int
                   ) -> tuple[DeadLetterEntry, list[RemediationRecord]]:
        entry = await self.get(guild_id, entry_id)
        return entry, await self.audit.history(guild_id, entry.id)

    async def get(self, guild_id: int, entry_id: int) -> DeadLetterEntry:
        check_entry_id(guild_id, entry_id)
        entry = await self.store.get(guild_id, entry_id)
        if entry is None:
            raise not_found(entry_id)
        return entry

    async def stats(self, guild_id: int, top: int = 10) -> Stats:
        check_snowflake("guild_id", guild_id)
        by_status = {s.value: 0 for s in DeadLetterStatus}
        by_signature: list[SignatureCount] = []
        # The counts by signature and status come from counters that triggers keep exact:
        # a few rows per signature, however many entries the guild has. The counts by
        # status are their sums.
        rows, oldest = await self.store.counts(guild_id)
        for signature, status, n, open_n, total in rows:
            by_status[status] += n
            if len(by_signature) < top and (not by_signature
                                            or by_signature[-1].signature != signature):
                operation, reason_code = signature_parts(signature)
                by_signature.append(SignatureCount(signature, operation, reason_code,
                                                   open_n, total))
        return Stats(by_status, by_signature, oldest, self.retention_days,
                     total=sum(by_status.values()))

    async def signatures(self, guild_id: int, prefix: str = "", limit: int = 25
                         ) -> list[SignatureCount]:
        """Open signatures of a guild, for autocomplete: most open entries first."""
        rows = await self.store.open_signatures(guild_id, prefix, limit)
        return [SignatureCount(signature, *signature_parts(signature), n, n)
                for signature, n in rows]


def entry_filter(status: str | None = None, operation: str | None = None,
                 source: str | None = None, signature: str | None = None,
                 user_id: int | None = None, id_prefix: str | None = None,
                 order: str = "newest") -> DeadLetterFilter:
    """The filters of a page or a bulk action, checked: InvalidInput names the first bad
    one."""
    # Each filter is checked in the order of the signature, so with two bad filters
    # the answer names the first.
    statuses = status_filter(status)
    operation_value = _enum_value(Operation, operation, "operation") \
        if operation is not None else None
    source_value = _enum_value(Source, source, "source") if source is not None else None
    if signature is not None and (not signature or len(signature) > 300):
        raise InvalidInput("signature must be 1..300 characters")
    if user_id is not None:
        check_snowflake("user_id", user_id)
    if id_prefix and (not (id_prefix.isascii() and id_prefix.isdigit())
                      or len(id_prefix) > 19):
        raise InvalidInput("id_prefix must be digits")
    if order not in ORDERS:
        raise InvalidInput("order must be one of: newest, oldest")
    return DeadLetterFilter(statuses=statuses, operation=operation_value,
                             source=source_value, signature=signature, user_id=user_id,
                             id_prefix=id_prefix or None, oldest_first=order == "oldest")


def status_filter(status: str | None) -> tuple[str, ...]:
    """The statuses a status filter selects: none given or `unresolved`, open and
    retrying; `all`, every status (the empty tuple); else that one status."""
    if status is None or status == UNRESOLVED:
        return UNRESOLVED_STATUSES
    if status == ALL:
        return ()
    try:
        return (DeadLetterStatus(status).value,)
    except ValueError:
        allowed = ", ".join([*(s.value for s in DeadLetterStatus), UNRESOLVED, ALL])
        raise InvalidInput(f"status must be one of: {allowed}") from None


def not_found(entry_id: int) -> NotFound:
    # Same answer for another guild's id: no way to probe other guilds.
    return NotFound(f"dead letter #{entry_id} does not exist in this guild")


def check_entry_id(guild_id: int, entry_id: int) -> None:
    check_snowflake("guild_id", guild_id)
    if isinstance(entry_id, bool) or not isinstance(entry_id, int) or not 0 < entry_id < 2**63:
        raise NotFound(f"dead letter #{entry_id} does not exist in this guild")


def _enum_value(enum_cls: Any, value: str, name: str) -> str:
    try:
        return str(enum_cls(value).value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_cls)
        raise InvalidInput(f"{name} must be one of: {allowed}") from None
