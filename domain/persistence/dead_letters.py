"""DeadLetterStore: dead letters, their per-signature counts, and the remediation audit trail.

A new dead letter is one statement (the record and its mirror row, as CTEs). A remediation
outcome is one statement too: the status compare-and-set, its audit row and its mirror row.
Counts by (signature, status) live in dead_letter_counts, kept exact by statement-level
triggers (migration 0002), so stats and most page totals never count entries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.entries import DeadLetterEntry, DeadLetterFilter, OutcomeWrite
from domain.mirror import level_values
from domain.persistence.database import Database, DriverStatement
from domain.persistence.dead_letter_queries import (
    OLDEST_OPEN_AGE,
    OPEN_SIGNATURES,
    STATS_BY_SIGNATURE_AND_STATUS,
    filter_sql,
    like_prefix,
    page_ids_sql,
    page_sql,
    status_clause,
)
from domain.persistence.faults import Faults, Point
from domain.persistence.sql import COLS, mirror_cte
from domain.vocabulary import DeadLetterStatus

INSERT = DriverStatement.of(text(
    f"""
    WITH ins AS (
      INSERT INTO dead_letters (
        guild_id, user_id, operation, from_state, to_state, observed_state, observed_version,
        reason_code, error_type, error_message, attempts, source, actor_id, idempotency_key,
        correlation_id, payload, signature, status, stack_trace)
      VALUES (
        :g, :user_id, CAST(:operation AS member_operation),
        CAST(:from_state AS member_state), CAST(:to_state AS member_state),
        CAST(:observed_state AS member_state), :observed_version,
        CAST(:reason_code AS dead_letter_reason), :error_type, :error_message, :attempts,
        CAST(:source AS transition_source), :actor_id, :idempotency_key, :correlation_id,
        CAST(:payload AS jsonb), :signature, 'open', :stack_trace)
      RETURNING id
    ),
    {mirror_cte("ins", "CAST(:mirror_payload AS jsonb) "
                       "|| jsonb_build_object('dead_letter_id', ins.id)")}
    SELECT id FROM ins
    """))  # noqa: S608

GET = text(f"SELECT {COLS} FROM dead_letters WHERE id = :id AND guild_id = :g")  # noqa: S608
GET_FOR_UPDATE = text(
    f"SELECT {COLS} FROM dead_letters WHERE id = :id AND guild_id = :g FOR UPDATE")  # noqa: S608

CLAIM = DriverStatement.of(text(
    f"""UPDATE dead_letters SET status = 'retrying', version = version + 1, updated_at = now()
        WHERE id = :id AND guild_id = :g
          AND (status = 'open' OR (status = 'retrying'
               AND updated_at < now() - make_interval(secs => :stale)))
        RETURNING {COLS}"""))  # noqa: S608

CLAIM_SOME = DriverStatement.of(text(
    f"""UPDATE dead_letters SET status = 'retrying', version = version + 1, updated_at = now()
        WHERE id = ANY(CAST(:ids AS bigint[])) AND guild_id = :g
          AND (status = 'open' OR (status = 'retrying'
               AND updated_at < now() - make_interval(secs => :stale)))
        RETURNING {COLS}"""))  # noqa: S608

# Only claims still as this caller left them (same version) go back to open.
RELEASE = DriverStatement.of(text(
    """UPDATE dead_letters AS d SET status = 'open', version = d.version + 1,
              updated_at = now()
       FROM unnest(CAST(:ids AS bigint[]), CAST(:versions AS int[])) AS c(id, version)
       WHERE d.id = c.id AND d.guild_id = :g AND d.version = c.version
         AND d.status = 'retrying'"""))

WRITE_OUTCOME = text(
    f"""WITH upd AS (
          UPDATE dead_letters SET
             status = CAST(:status AS dead_letter_status),
             version = version + 1, updated_at = now(),
             remediation_count = remediation_count + CASE WHEN :count_it THEN 1 ELSE 0 END,
             last_remediated_at = now(),
             resolved_by = CASE WHEN :resolved THEN CAST(:actor AS bigint) ELSE NULL END,
             resolution_note = CASE WHEN :resolved THEN CAST(:note AS text) ELSE NULL END,
             error_type = CASE WHEN :failed THEN CAST(:error_type AS text) ELSE error_type END,
             error_message = CASE WHEN :failed THEN CAST(:error_message AS text)
                                  ELSE error_message END
          WHERE id = :id AND guild_id = :g AND version = :version
          RETURNING {COLS}
        ),
        audit AS (
          INSERT INTO remediation_actions (guild_id, target_kind, target_id, dead_letter_id,
                 actor_id, source, action, outcome, status_before, status_after, note,
                 error_message, correlation_id)
          SELECT :g, 'dead_letter', :id, :id, :actor, CAST(:source AS transition_source),
                 :action, :outcome, CAST(:before AS dead_letter_status)::text,
                 CAST(:status AS dead_letter_status)::text, :note, :error_message, :corr
          FROM upd
        ),{mirror_cte("upd")}
        SELECT * FROM upd""")  # noqa: S608
DRIVER_WRITE_OUTCOME = DriverStatement.of(WRITE_OUTCOME)

REOPEN_EXPIRED_CLAIMS = text(
    """UPDATE dead_letters SET status = 'open', version = version + 1, updated_at = now()
       WHERE id IN (SELECT id FROM dead_letters
                    WHERE status = 'retrying'
                      AND updated_at < now() - make_interval(secs => :stale)
                    ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)""")

OPEN_IDS = text("SELECT id FROM dead_letters WHERE guild_id = :g AND signature = :s "
                "AND status = 'open' ORDER BY id")

# Retention: closed entries past it go; their audit rows (remediation_actions) are kept.
PURGE_CLOSED = text("""
    DELETE FROM dead_letters WHERE id IN (
      SELECT id FROM dead_letters
      WHERE status IN ('resolved', 'dismissed')
        AND updated_at < now() - make_interval(days => :days)
      LIMIT :limit FOR UPDATE SKIP LOCKED)
""")

# Staff delete an entry: gone (the counters' trigger takes it out of the counts), its audit
# row and mirror row written by the same statement; its earlier audit rows stay.
DELETE_ENTRY = text(
    f"""WITH del AS (
          DELETE FROM dead_letters WHERE id = :id AND guild_id = :g AND version = :version
          RETURNING {COLS}
        ),
        audit AS (
          INSERT INTO remediation_actions (guild_id, target_kind, target_id, dead_letter_id,
                 actor_id, source, action, outcome, status_before, status_after, note,
                 error_message, correlation_id)
          SELECT :g, 'dead_letter', :id, :id, :actor, CAST(:source AS transition_source),
                 :action, :outcome, del.status::text, :status, :note, NULL, :corr
          FROM del
        ),{mirror_cte("del")}
        SELECT * FROM del""")  # noqa: S608

_REMEDIATION_LEVELS = level_values("remediation")
_DEAD_LETTER_LEVELS = level_values("dead_letter")


class DeadLetterStore:
    def __init__(self, db: Database, faults: Faults | None = None) -> None:
        self.db = db
        self.faults = faults

    # ---- writing ---------------------------------------------------------------------

    async def insert(self, record: dict[str, Any], mirror: dict[str, Any]) -> int:
        """A new open entry (`record`: its columns, `payload` as a dict) and, in the same
        statement, its mirror row (the facts `mirror`, their `dead_letter_id` set to the new
        entry's id)."""
        params = {**record, "g": record["guild_id"], "payload": json.dumps(record["payload"]),
                  "mirror_payload": json.dumps(mirror), "mirror_levels": _DEAD_LETTER_LEVELS}
        async with self.db.driver() as conn:
            if self.faults is not None:
                await self.faults.enter(Point.DEAD_LETTERS_INSERT, conn,
                                        guild_id=record["guild_id"],
                                        user_id=record["user_id"],
                                        key=record["idempotency_key"],
                                        operation=record["operation"])
            entry_id = await conn.fetchval(INSERT.sql, *INSERT.args(params))
        return int(entry_id)

    async def claim(self, guild_id: int, entry_id: int, stale_seconds: float
                    ) -> DeadLetterEntry | None:
        """The compare-and-set on the status that claims an entry for one replay: open (or
        claimed longer than `stale_seconds` ago) -> retrying. None when it did not match."""
        async with self.db.driver() as conn:
            if self.faults is not None and await self.faults.enter(
                    Point.DEAD_LETTERS_CLAIM, conn, guild_id=guild_id,
                    detail={"ids": [entry_id]}):
                return None
            row = await conn.fetchrow(CLAIM.sql, *CLAIM.args(
                {"id": entry_id, "g": guild_id, "stale": stale_seconds}))
        return DeadLetterEntry.from_mapping(row) if row is not None else None

    async def claim_some(self, guild_id: int, entry_ids: Sequence[int], stale_seconds: float
                         ) -> list[DeadLetterEntry]:
        """Claims those of `entry_ids` that are open (or claimed long ago), in id order."""
        async with self.db.driver() as conn:
            if self.faults is not None and await self.faults.enter(
                    Point.DEAD_LETTERS_CLAIM, conn, guild_id=guild_id,
                    detail={"ids": list(entry_ids)}):
                return []
            rows = await conn.fetch(CLAIM_SOME.sql, *CLAIM_SOME.args(
                {"ids": list(entry_ids), "g": guild_id, "stale": stale_seconds}))
        return sorted((DeadLetterEntry.from_mapping(r) for r in rows), key=lambda e: e.id)

    async def release(self, claimed: Sequence[DeadLetterEntry]) -> None:
        """Gives back claims that were not used: open again, as they were."""
        if not claimed:
            return
        async with self.db.driver() as conn:
            await conn.execute(RELEASE.sql, *RELEASE.args(
                {"ids": [e.id for e in claimed], "versions": [e.version for e in claimed],
                 "g": claimed[0].guild_id}))

    async def write_outcomes(self, outcomes: Sequence[OutcomeWrite]
                             ) -> list[DeadLetterEntry | None]:
        """Writes remediation outcomes (status, audit row, mirror row each), all in one
        transaction: one commit for a batch. None for an entry whose version moved on
        meanwhile (a claim taken over as stale)."""
        if not outcomes:
            return []
        # Each statement's trigger locks its dead_letter_counts rows in status order (open <
        # retrying < resolved). A transaction of several statements must take them in that
        # order too, or two sessions writing to the same counter slot deadlock: so failures
        # (-> open) are written before the rest.
        order = sorted(range(len(outcomes)),
                       key=lambda i: outcomes[i].status != DeadLetterStatus.OPEN)
        rows: list[Any] = [None] * len(outcomes)
        async with self.db.driver() as conn:
            if len(outcomes) == 1:
                rows[0] = await self._write_outcome(conn, outcomes[0])
            else:
                async with conn.transaction():
                    for i in order:
                        rows[i] = await self._write_outcome(conn, outcomes[i])
        return [DeadLetterEntry.from_mapping(r) if r is not None else None for r in rows]

    async def _write_outcome(self, conn: Any, outcome: OutcomeWrite) -> Any:
        if self.faults is not None and await self.faults.enter(
                Point.DEAD_LETTERS_OUTCOME, conn, guild_id=outcome.guild_id,
                detail={"id": outcome.entry_id, "action": outcome.action,
                        "status": outcome.status}):
            return None
        stmt = DRIVER_WRITE_OUTCOME
        return await conn.fetchrow(stmt.sql, *stmt.args(_outcome_params(outcome)))

    async def change_status(self, guild_id: int, entry_id: int,
                            decide: Callable[[DeadLetterEntry], OutcomeWrite]
                            ) -> DeadLetterEntry | None:
        """Locks the entry, asks `decide` what to write (it raises to refuse: nothing is
        written), and writes it, in one transaction. None: no such entry in this guild, or
        (when `decide` was asked) the write changed nothing."""
        async with self.db.transaction() as conn:
            outcome = await self._decided(conn, guild_id, entry_id, decide)
            if outcome is None:
                return None
            written = (await conn.execute(WRITE_OUTCOME, _outcome_params(outcome))).first()
        return DeadLetterEntry.from_mapping(written._mapping) if written is not None else None

    async def _decided(self, conn: AsyncConnection, guild_id: int, entry_id: int,
                       decide: Callable[[DeadLetterEntry], OutcomeWrite]
                       ) -> OutcomeWrite | None:
        """The entry locked, and what `decide` writes for it (it raises to refuse); None
        when there is no such entry in the guild, or the fault seam drops the write."""
        row = (await conn.execute(GET_FOR_UPDATE, {"id": entry_id, "g": guild_id})).first()
        if row is None:
            return None
        outcome = decide(DeadLetterEntry.from_mapping(row._mapping))
        if self.faults is not None and await self.faults.enter(
                Point.DEAD_LETTERS_OUTCOME, conn, guild_id=guild_id,
                detail={"id": entry_id, "action": outcome.action, "status": outcome.status}):
            return None
        return outcome

    async def delete(self, guild_id: int, entry_id: int,
                     decide: Callable[[DeadLetterEntry], OutcomeWrite]
                     ) -> DeadLetterEntry | None:
        """Locks the entry, asks `decide` for the audit row (it raises to refuse: nothing is
        written), and deletes the entry with its audit and mirror rows, in one transaction.
        The entry as it was; None: no such entry in this guild, or nothing deleted."""
        async with self.db.transaction() as conn:
            outcome = await self._decided(conn, guild_id, entry_id, decide)
            if outcome is None:
                return None
            params = _outcome_params(outcome)
            deleted = (await conn.execute(DELETE_ENTRY, {
                k: params[k] for k in ("id", "g", "version", "actor", "source", "action",
                                       "outcome", "status", "note", "corr", "mirror_payload",
                                       "mirror_levels")})).first()
        return DeadLetterEntry.from_mapping(deleted._mapping) if deleted is not None else None

    async def reopen_expired_claims(self, claim_seconds: float, limit: int) -> int:
        """Entries left `retrying` longer than `claim_seconds` (their replayer died) are
        open again; how many. (The claim is bookkeeping: no audit row, as for a claim.)"""
        async with self.db.transaction() as conn:
            result = await conn.execute(REOPEN_EXPIRED_CLAIMS,
                                        {"stale": claim_seconds, "limit": limit})
            return int(result.rowcount)

    async def purge_closed(self, retention_days: int, limit: int) -> int:
        """Delete up to `limit` resolved or dismissed entries older than the retention; how
        many went."""
        async with self.db.transaction() as conn:
            result = await conn.execute(PURGE_CLOSED, {"days": retention_days, "limit": limit})
            return int(result.rowcount)

    # ---- reading ---------------------------------------------------------------------

    async def get(self, guild_id: int, entry_id: int) -> DeadLetterEntry | None:
        async with self.db.autocommit() as conn:
            row = (await conn.execute(GET, {"id": entry_id, "g": guild_id})).first()
        return DeadLetterEntry.from_mapping(row._mapping) if row is not None else None

    async def open_ids(self, guild_id: int, signature: str) -> list[int]:
        async with self.db.autocommit() as conn:
            return list((await conn.execute(OPEN_IDS, {"g": guild_id, "s": signature}))
                        .scalars())

    async def page(self, guild_id: int, where: DeadLetterFilter, *, before: int | None,
                   limit: int, count_limit: int | None, with_total: bool
                   ) -> tuple[list[DeadLetterEntry], int, bool]:
        """Up to `limit` entries in the filter's order (past the cursor `before`: below it
        newest first, above it oldest first), the total of matches (-1 without
        `with_total`) and whether that total is exact.

        Filtered by status, operation and/or signature only, the total is a sum of
        dead_letter_counts (exact, cheap). Filtered by source, user or id prefix, it counts
        the matching entries; with `count_limit=N` that count stops after N + 1 matches and
        is not exact past N (counting 90,000 matches costs 5-6 ms, most of a page's time;
        stopping, 0.1 ms)."""
        clauses, counter_clauses, params = filter_sql(guild_id, where)
        filters = " AND ".join(clauses + status_clause(where))
        async with self.db.autocommit() as conn:
            rows = (await conn.execute(page_sql(where, clauses, params, before),
                                       {**params, "limit": limit})).all()
            total, exact = -1, True
            if with_total and counter_clauses is not None:
                total = int((await conn.execute(text(
                    "SELECT coalesce(sum(n), 0) FROM dead_letter_counts "  # noqa: S608
                    f"WHERE {' AND '.join(counter_clauses)}"), params)).scalar_one())
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
        return [DeadLetterEntry.from_mapping(r._mapping) for r in rows], total, exact

    async def matching_ids(self, guild_id: int, where: DeadLetterFilter, limit: int
                           ) -> tuple[list[int], int]:
        """The ids of up to `limit` entries matching `where`, in its order, and how many
        match in all (counted exactly: a bulk action says what it will touch)."""
        clauses, _, params = filter_sql(guild_id, where)
        filters = " AND ".join(clauses + status_clause(where))
        async with self.db.autocommit() as conn:
            ids = list((await conn.execute(text(page_ids_sql(where, clauses, params, None)),
                                           {**params, "limit": limit})).scalars())
            total = (await conn.execute(text(
                f"SELECT count(*) FROM dead_letters WHERE {filters}"),  # noqa: S608
                params)).scalar_one()
        return ids, int(total)

    async def counts(self, guild_id: int) -> tuple[list[tuple[str, str, int, int, int]],
                                                    float | None]:
        """(signature, status, n, open of the signature, total of the signature) ranked by
        open then total, and the age in seconds of the oldest open entry (None: none)."""
        async with self.db.autocommit() as conn:
            rows = [(r.signature, r.status, int(r.n), int(r.open), int(r.total))
                    for r in await conn.execute(STATS_BY_SIGNATURE_AND_STATUS, {"g": guild_id})]
            oldest = (await conn.execute(OLDEST_OPEN_AGE, {"g": guild_id})).scalar_one_or_none()
        return rows, float(oldest) if oldest is not None else None

    async def open_signatures(self, guild_id: int, prefix: str, limit: int
                              ) -> list[tuple[str, int]]:
        """(signature, open entries) of the guild's open signatures starting with `prefix`,
        most open first."""
        async with self.db.autocommit() as conn:
            rows = await conn.execute(OPEN_SIGNATURES, {"g": guild_id,
                                                         "prefix": like_prefix(prefix),
                                                         "limit": limit})
            return [(r.signature, int(r.open)) for r in rows]


def _outcome_params(o: OutcomeWrite) -> dict[str, Any]:
    return {
        "id": o.entry_id, "g": o.guild_id, "version": o.version, "status": o.status,
        "actor": o.actor_id, "note": o.note, "resolved": o.closes,
        "failed": o.error_type is not None, "error_type": o.error_type,
        "error_message": o.error_message, "count_it": o.counts, "source": o.source,
        "action": o.action, "outcome": o.outcome, "before": o.status_before,
        "corr": o.correlation_id, "mirror_payload": json.dumps(o.mirror),
        "mirror_levels": _REMEDIATION_LEVELS,
    }
