"""The overview's snapshot tables stay small: the day's first refresh drops what aged past
what the overview keeps (KEPT), and keeps the rest, for every guild."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text

from domain.overview import KEPT
from tests.helpers import GUILD, OTHER_GUILD
from tests.wiring import ProcessServices


async def test_a_refresh_drops_snapshot_rows_past_what_the_overview_keeps(
        services: ProcessServices) -> None:
    today = datetime.now(UTC).date()
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    def days_ago(n: int) -> date:
        return today - timedelta(days=n)
    async with services.db.transaction() as conn:
        for guild in (GUILD, OTHER_GUILD):
            for n in (KEPT.daily_days + 1, KEPT.daily_days - 1):
                await conn.execute(text(
                    "INSERT INTO daily_guild_stats (guild_id, day, new_entries, "
                    "resolved_entries, open_entries) VALUES (:g, :d, 1, 0, 1)"),
                    {"g": guild, "d": days_ago(n)})
            for n in (KEPT.signature_days + 1, KEPT.signature_days - 1):
                await conn.execute(text(
                    "INSERT INTO daily_signature_open (guild_id, day, signature, "
                    "open_entries) VALUES (:g, :d, 'sig', 1)"), {"g": guild, "d": days_ago(n)})
            for hours in (24 * KEPT.hourly_days + 1, 24 * KEPT.hourly_days - 1):
                await conn.execute(text(
                    "INSERT INTO hourly_transitions (guild_id, hour, source, n) "
                    "VALUES (:g, :h, 'gateway', 1)"),
                    {"g": guild, "h": now - timedelta(hours=hours)})
    await services.services.overview.refresh()
    async with services.db.autocommit() as conn:
        left = {table: sorted((r[0], r[1]) for r in (await conn.execute(text(
            f"SELECT guild_id, {column} FROM {table}"))).all())
            for table, column in (("daily_guild_stats", "day"),
                                  ("daily_signature_open", "day"),
                                  ("hourly_transitions", "hour"))}
    assert left["daily_guild_stats"] == sorted(
        (g, days_ago(KEPT.daily_days - 1)) for g in (GUILD, OTHER_GUILD))
    assert left["daily_signature_open"] == sorted(
        (g, days_ago(KEPT.signature_days - 1)) for g in (GUILD, OTHER_GUILD))
    assert left["hourly_transitions"] == sorted(
        (g, now - timedelta(hours=24 * KEPT.hourly_days - 1)) for g in (GUILD, OTHER_GUILD))

    # The day's later refreshes (every 5 minutes) do not read the tables whole again.
    async with services.db.transaction() as conn:
        await conn.execute(text(
            "INSERT INTO daily_guild_stats (guild_id, day, new_entries, resolved_entries, "
            "open_entries) VALUES (:g, :d, 1, 0, 1)"),
            {"g": GUILD, "d": days_ago(KEPT.daily_days + 1)})
    await services.services.overview.refresh()
    async with services.db.autocommit() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM daily_guild_stats WHERE day = :d"),
                                   {"d": days_ago(KEPT.daily_days + 1)})).scalar_one() == 1
