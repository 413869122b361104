"""Reading dead letters: pages, one entry with its history, stats, signatures.

`DeadLetterReads` is the reading half of RemediationService (domain/remediation.py), which
adds the actions. Totals and counts come from `dead_letter_counts` where they can.
"""

from __future__ import annotations

import builtins
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.commands import MAX_SNOWFLAKE, check_snowflake
from domain.entries import DeadLetterEntry, Page, RemediationRecord, SignatureCount, Stats
from domain.errors import InvalidInput, NotFound
from domain.lifecycle import Operation, Source
from domain.persistence.database import Database
from domain.persistence.tables import DeadLetterStatus
from domain.remediation_sql import (
    COLS,
    GET,
    GET_FOR_UPDATE,
    OPEN_SIGNATURES,
    STATS_BY_SIGNATURE_AND_STATUS,
)

MAX_LIMIT = 100


def parse_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    # ASCII digits only ("²".isdigit() is true) and within bigint, or the query fails.
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 19 \
            or int(cursor) > MAX_SNOWFLAKE:
        raise InvalidInput("cursor is not valid: pass the next_cursor of a previous page")
    return int(cursor)


class DeadLetterReads:
    def __init__(self, db: Database, retention_days: int = 30) -> None:
        self.db = db
        self.retention_days = retention_days

    async def list(self, guild_id: int, *, status: str | None = None,
                   operation: str | None = None, source: str | None = None,
                   signature: str | None = None, user_id: int | None = None,
                   limit: int = 20, cursor: str | None = None,
                   with_total: bool = True, id_prefix: str | None = None,
                   count_limit: int | None = None) -> Page:
        """A page, newest first; `total` counts every match (-1 without `with_total`).

        Filtered by status, operation and/or signature only (what /dlq list and the web
        app's queue views ask), the total is exact and cheap: a sum of dead_letter_counts.
        Filtered by source, user or id prefix, it counts the matching entries; with
        `count_limit=N` that count stops after N + 1 matches and `total_exact` is false past
        N (counting 90,000 matches costs 5-6 ms, most of a page's time; stopping, 0.1 ms).
        """
        check_snowflake("guild_id", guild_id)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
        if count_limit is not None and (isinstance(count_limit, bool)
                                        or not isinstance(count_limit, int) or count_limit < 1):
            raise InvalidInput("count_limit must be a whole number >= 1")
        where = ["guild_id = :g"]
        # The same filters on dead_letter_counts (signature = operation/reason/error type),
        # which cannot answer a source, user or id filter.
        where_counts = ["guild_id = :g"]
        countable = source is None and user_id is None and not id_prefix
        params: dict[str, Any] = {"g": guild_id}
        if status is not None:
            params["status"] = _enum_value(DeadLetterStatus, status, "status")
            where.append("status = CAST(:status AS dead_letter_status)")
            where_counts.append(where[-1])
        if operation is not None:
            params["operation"] = _enum_value(Operation, operation, "operation")
            params["operation_prefix"] = _like_prefix(params["operation"] + "/")
            where.append("operation = CAST(:operation AS member_operation)")
            where_counts.append("signature LIKE :operation_prefix")
        if source is not None:
            params["source"] = _enum_value(Source, source, "source")
            where.append("source = CAST(:source AS transition_source)")
        if signature is not None:
            if not signature or len(signature) > 300:
                raise InvalidInput("signature must be 1..300 characters")
            params["signature"] = signature
            where.append("signature = :signature")
            where_counts.append(where[-1])
        if user_id is not None:
            params["user_id"] = check_snowflake("user_id", user_id)
            where.append("user_id = :user_id")
        if id_prefix:  # autocomplete: ids that start with what staff typed
            if not (id_prefix.isascii() and id_prefix.isdigit()) or len(id_prefix) > 19:
                raise InvalidInput("id_prefix must be digits")
            params["id_prefix"] = id_prefix + "%"
            where.append("CAST(id AS text) LIKE :id_prefix")
        filters = " AND ".join(where)
        after = parse_cursor(cursor)
        page_where = filters + (" AND id < :after" if after is not None else "")
        params_page = {**params, "after": after, "limit": limit + 1}
        async with self.db.autocommit() as conn:
            # The page's ids first, then its rows: selecting only ids lets the planner walk
            # the index of the filters (index only) in id order. Asked for every column at
            # once, it could prefer walking the primary key backwards and filtering, which
            # reads every newer entry of every guild first: 465 ms for a guild whose open
            # entries were all older than 900,000 others (bench/README.md).
            rows = (await conn.execute(text(
                f"SELECT {COLS} FROM dead_letters WHERE id IN ("  # noqa: S608
                f"SELECT id FROM dead_letters WHERE {page_where} "
                "ORDER BY id DESC LIMIT :limit) ORDER BY id DESC"), params_page)).all()
            total, exact = -1, True
            if with_total and countable:
                total = int((await conn.execute(text(
                    "SELECT coalesce(sum(n), 0) FROM dead_letter_counts "  # noqa: S608
                    f"WHERE {' AND '.join(where_counts)}"), params)).scalar_one())
            elif with_total and count_limit is not None:
                total = (await conn.execute(text(
                    f"SELECT count(*) FROM (SELECT 1 FROM dead_letters WHERE {filters} "  # noqa: S608
                    "LIMIT :count_limit) AS matches"),
                    {**params, "count_limit": count_limit + 1})).scalar_one()
                exact = total <= count_limit
            elif with_total:
                total = (await conn.execute(text(
                    f"SELECT count(*) FROM dead_letters WHERE {filters}"),  # noqa: S608
                    params)).scalar_one()
        items = [DeadLetterEntry.from_row(r) for r in rows[:limit]]
        next_cursor = str(items[-1].id) if len(rows) > limit else None
        return Page(items, next_cursor, total, exact)

    async def show(self, guild_id: int, entry_id: int
                   ) -> tuple[DeadLetterEntry, builtins.list[RemediationRecord]]:
        async with self.db.autocommit() as conn:
            entry = await self._get(conn, guild_id, entry_id)
            rows = await conn.execute(text(
                "SELECT * FROM remediation_actions WHERE guild_id = :g AND dead_letter_id = :id "
                "ORDER BY id"), {"g": guild_id, "id": entry.id})
            return entry, [RemediationRecord.from_row(r) for r in rows]

    async def stats(self, guild_id: int, top: int = 10) -> Stats:
        check_snowflake("guild_id", guild_id)
        by_status = {s.value: 0 for s in DeadLetterStatus}
        by_signature: builtins.list[SignatureCount] = []
        async with self.db.autocommit() as conn:
            # The counts by signature and status come from dead_letter_counts, which triggers
            # on dead_letters keep exact: a few rows per signature (one per status and
            # writer slot), however many entries the guild has. The counts by status are
            # their sums.
            for r in await conn.execute(STATS_BY_SIGNATURE_AND_STATUS, {"g": guild_id}):
                by_status[r.status] += int(r.n)
                if len(by_signature) < top and (not by_signature
                                                or by_signature[-1].signature != r.signature):
                    operation, reason_code = _signature_parts(r.signature)
                    by_signature.append(SignatureCount(r.signature, operation, reason_code,
                                                       int(r.open), int(r.total)))
            # Ids grow with created_at (both set by the INSERT), so the oldest open entry is
            # the first by id: an index probe instead of reading every open entry.
            # (The id alone first, for the same reason as in list().)
            oldest = (await conn.execute(text(
                "SELECT extract(epoch FROM now() - created_at) FROM dead_letters "
                "WHERE id = (SELECT id FROM dead_letters WHERE guild_id = :g "
                "AND status = 'open' ORDER BY id LIMIT 1)"),
                {"g": guild_id})).scalar_one_or_none()
        return Stats(by_status, by_signature,
                     float(oldest) if oldest is not None else None, self.retention_days)

    async def signatures(self, guild_id: int, prefix: str = "", limit: int = 25
                         ) -> builtins.list[SignatureCount]:
        """Open signatures of a guild, for autocomplete: most open entries first."""
        async with self.db.autocommit() as conn:
            rows = await conn.execute(OPEN_SIGNATURES, {"g": guild_id,
                                                         "prefix": _like_prefix(prefix),
                                                         "limit": limit})
            return [SignatureCount(r.signature, *_signature_parts(r.signature), int(r.open),
                                   int(r.open)) for r in rows]

    async def _get(self, conn: AsyncConnection, guild_id: int, entry_id: int,
                   for_update: bool = False) -> DeadLetterEntry:
        check_entry_id(guild_id, entry_id)
        row = (await conn.execute(GET_FOR_UPDATE if for_update else GET,
                                  {"id": entry_id, "g": guild_id})).first()
        if row is None:
            # Same answer for another guild's id: no way to probe other guilds.
            raise NotFound(f"dead letter #{entry_id} does not exist in this guild")
        return DeadLetterEntry.from_row(row)


def check_entry_id(guild_id: int, entry_id: int) -> None:
    check_snowflake("guild_id", guild_id)
    if isinstance(entry_id, bool) or not isinstance(entry_id, int) or not 0 < entry_id < 2**63:
        raise NotFound(f"dead letter #{entry_id} does not exist in this guild")


def _signature_parts(signature: str) -> tuple[str, str]:
    """(operation, reason code) of a signature_of() signature: `operation/reason/error`."""
    operation, _, rest = signature.partition("/")
    return operation, rest.partition("/")[0]


def _enum_value(enum_cls: Any, value: str, name: str) -> str:
    try:
        return str(enum_cls(value).value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_cls)
        raise InvalidInput(f"{name} must be one of: {allowed}") from None


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
