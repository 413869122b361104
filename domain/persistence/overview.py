"""OverviewStore: the console overview's numbers. The delivery worker refreshes the small
snapshot tables (migration 0006) every few minutes; the charts read them, plus the last
day's delivered outbox rows for the delivery lag."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import text

from domain.persistence.database import Database

# Today's row of every set-up guild (yesterday's stays as its last refresh left it).
DAILY = text("""
    INSERT INTO daily_guild_stats (guild_id, day, new_entries, resolved_entries, open_entries)
    SELECT g.guild_id, CAST(:day AS date),
      (SELECT count(*) FROM dead_letters d WHERE d.guild_id = g.guild_id
         AND d.created_at >= CAST(:day AS date) AND d.created_at < CAST(:day AS date) + 1),
      (SELECT count(DISTINCT r.dead_letter_id) FROM remediation_actions r
         WHERE r.guild_id = g.guild_id AND r.status_after = 'resolved'
         AND r.created_at >= CAST(:day AS date) AND r.created_at < CAST(:day AS date) + 1),
      (SELECT coalesce(sum(c.n), 0) FROM dead_letter_counts c WHERE c.guild_id = g.guild_id
         AND c.status = 'open')
    FROM guild_settings g
    ON CONFLICT (guild_id, day) DO UPDATE SET new_entries = EXCLUDED.new_entries,
      resolved_entries = EXCLUDED.resolved_entries, open_entries = EXCLUDED.open_entries
""")
CLEAR_SIGNATURES = text("DELETE FROM daily_signature_open WHERE day = CAST(:day AS date)")
SIGNATURES = text("""
    INSERT INTO daily_signature_open (guild_id, day, signature, open_entries)
    SELECT guild_id, CAST(:day AS date), signature, sum(n) FROM dead_letter_counts
    WHERE status = 'open' GROUP BY guild_id, signature HAVING sum(n) > 0
""")
WATERMARK_ROW = text("INSERT INTO snapshot_watermarks (name, last_id) VALUES ('transitions', 0) "
                     "ON CONFLICT (name) DO NOTHING")
# Ledger rows past the watermark, in id order, up to the first one younger than a minute (a
# younger one's transaction might still be followed by a smaller id committing late).
HOURLY = text("""
    WITH w AS (SELECT last_id FROM snapshot_watermarks WHERE name = 'transitions'
               FOR UPDATE),
    batch AS (SELECT id, guild_id, source, created_at FROM member_transitions
              WHERE id > (SELECT last_id FROM w) ORDER BY id LIMIT :limit),
    cut AS (SELECT min(id) AS first_recent FROM batch
            WHERE created_at >= now() - interval '60 seconds'),
    ready AS (SELECT * FROM batch
              WHERE id < coalesce((SELECT first_recent FROM cut), 9223372036854775807)),
    counted AS (
      INSERT INTO hourly_transitions (guild_id, hour, source, n)
      SELECT guild_id, date_trunc('hour', created_at), source::text, count(*) FROM ready
      GROUP BY 1, 2, 3
      ON CONFLICT (guild_id, hour, source) DO UPDATE SET n = hourly_transitions.n + EXCLUDED.n
    )
    UPDATE snapshot_watermarks SET last_id = (SELECT max(id) FROM ready)
    WHERE name = 'transitions' AND EXISTS (SELECT 1 FROM ready)
    RETURNING last_id
""")

# What no chart reads any more goes, once a day: the first refresh of a day, in whichever
# process, claims the day (the tables' keys start with the guild, so each purge reads them
# whole: small tables, but not every 5 minutes).
CLAIM_PURGE = text("""
    INSERT INTO snapshot_watermarks (name, last_id) VALUES ('purged_day', :day)
    ON CONFLICT (name) DO UPDATE SET last_id = EXCLUDED.last_id
    WHERE snapshot_watermarks.last_id < EXCLUDED.last_id
    RETURNING last_id
""")
PURGE = (
    text("DELETE FROM hourly_transitions "
         "WHERE hour < now() - make_interval(days => :hourly_days)"),
    text("DELETE FROM daily_signature_open "
         "WHERE day < CAST(:today AS date) - CAST(:signature_days AS integer)"),
    text("DELETE FROM daily_guild_stats "
         "WHERE day < CAST(:today AS date) - CAST(:daily_days AS integer)"),
)

READ_DAILY = text("""
    SELECT day, new_entries, resolved_entries, open_entries FROM daily_guild_stats
    WHERE guild_id = :g AND day > CAST(:today AS date) - CAST(:days AS integer) ORDER BY day
""")
READ_SIGNATURES = text("""
    SELECT day, signature, open_entries FROM daily_signature_open
    WHERE guild_id = :g AND day > CAST(:today AS date) - CAST(:days AS integer)
    ORDER BY day, signature
""")
READ_HOURLY = text("""
    SELECT hour, source, n FROM hourly_transitions
    WHERE guild_id = :g AND hour > now() - make_interval(hours => :hours) ORDER BY hour
""")
READ_LAG = text("""
    SELECT date_trunc('hour', delivered_at) AS hour, count(*) AS n,
           percentile_cont(0.95) WITHIN GROUP (
             ORDER BY extract(epoch FROM delivered_at - created_at)) AS p95
    FROM outbox
    WHERE status = 'delivered' AND delivered_at > now() - make_interval(hours => :hours)
      AND guild_id = :g
    GROUP BY 1 ORDER BY 1
""")


@dataclass(frozen=True)
class Kept:
    """How many days of each snapshot table the overview keeps."""

    hourly_days: int
    signature_days: int
    daily_days: int


class OverviewStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def refresh(self, today: date, kept: Kept, limit: int = 50_000) -> int:
        """Today's daily rows, and the ledger rows counted by hour since the last refresh
        (at most `limit`); once a day, rows older than `kept` go. How many ledger rows were
        counted."""
        async with self.db.transaction() as conn:
            await conn.execute(DAILY, {"day": today})
            await conn.execute(CLEAR_SIGNATURES, {"day": today})
            await conn.execute(SIGNATURES, {"day": today})
            if (await conn.execute(CLAIM_PURGE, {"day": today.toordinal()})).first():
                for purge in PURGE:
                    await conn.execute(purge, {
                        "today": today, "hourly_days": kept.hourly_days,
                        "signature_days": kept.signature_days, "daily_days": kept.daily_days})
        async with self.db.transaction() as conn:
            before = (await conn.execute(text(
                "SELECT last_id FROM snapshot_watermarks WHERE name = 'transitions'"))
            ).scalar()
            await conn.execute(WATERMARK_ROW)
            after = (await conn.execute(HOURLY, {"limit": limit})).scalar()
        return 0 if after is None else int(after) - int(before or 0)

    async def read(self, guild_id: int, today: date, days: int, hours: int
                   ) -> dict[str, list[Any]]:
        params = {"g": guild_id, "today": today, "days": days, "hours": hours}
        async with self.db.autocommit() as conn:
            return {
                "daily": list((await conn.execute(READ_DAILY, params)).all()),
                "signatures": list((await conn.execute(READ_SIGNATURES, params)).all()),
                "hourly": list((await conn.execute(READ_HOURLY, params)).all()),
                "lag": list((await conn.execute(READ_LAG, params)).all()),
            }


