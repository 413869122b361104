"""The console overview's numbers: open entries by signature over the last 30 days, new vs
resolved per day, transitions per hour by source, and the delivery lag. The history comes
from snapshot tables the delivery worker refreshes (retention erases the rows themselves);
the same numbers are the API's `/overview/...` routes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from domain.commands import check_snowflake
from domain.persistence.overview import Kept, OverviewStore

DAYS = 30
HOURS = 48
# Kept a while past what the charts show (a chart may grow); the daily totals for a year.
KEPT = Kept(hourly_days=7, signature_days=2 * DAYS, daily_days=400)
TOP_SIGNATURES = 5


@dataclass(frozen=True)
class DayStat:
    day: date
    new_entries: int
    resolved_entries: int
    open_entries: int | None  # None: no snapshot that day


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[str, float]]  # (label, value), oldest first


@dataclass(frozen=True)
class Overview:
    days: list[DayStat]
    open_by_signature: list[Series]
    transitions_by_source: list[Series]
    delivery_lag_p95: Series
    deliveries_per_hour: Series
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class OverviewService:
    def __init__(self, store: OverviewStore) -> None:
        self.store = store

    async def refresh(self) -> int:
        """Refresh today's snapshots and count new ledger rows by hour (the worker calls it
        every few minutes; safe from several processes at once)."""
        return await self.store.refresh(datetime.now(UTC).date(), KEPT)

    async def read(self, guild_id: int) -> Overview:
        check_snowflake("guild_id", guild_id)
        today = datetime.now(UTC).date()
        raw = await self.store.read(guild_id, today, DAYS, HOURS)
        by_day = {r.day: r for r in raw["daily"]}
        days = []
        for offset in range(DAYS - 1, -1, -1):
            day = today - timedelta(days=offset)
            row = by_day.get(day)
            days.append(DayStat(day, row.new_entries if row else 0,
                                row.resolved_entries if row else 0,
                                row.open_entries if row else None))
        latest: dict[str, int] = {}
        per_signature: dict[str, dict[date, int]] = {}
        for r in raw["signatures"]:
            per_signature.setdefault(r.signature, {})[r.day] = r.open_entries
            latest[r.signature] = r.open_entries
        top = sorted(latest, key=lambda s: (-latest[s], s))[:TOP_SIGNATURES]
        signatures = [Series(s, [(d.day.isoformat(), float(per_signature[s].get(d.day, 0)))
                                 for d in days]) for s in top]
        hours = [(datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
                  - timedelta(hours=h)) for h in range(HOURS - 1, -1, -1)]
        per_source: dict[str, dict[datetime, int]] = {}
        for r in raw["hourly"]:
            per_source.setdefault(r.source, {})[r.hour] = r.n
        transitions = [Series(source, [(h.strftime("%d %H:00"), float(counts.get(h, 0)))
                                       for h in hours])
                       for source, counts in sorted(per_source.items())]
        lag = {r.hour: r for r in raw["lag"]}
        lag_hours = hours[-24:]
        return Overview(
            days=days, open_by_signature=signatures, transitions_by_source=transitions,
            delivery_lag_p95=Series("p95 seconds", [
                (h.strftime("%d %H:00"), float(lag[h].p95) if h in lag else 0.0)
                for h in lag_hours]),
            deliveries_per_hour=Series("delivered", [
                (h.strftime("%d %H:00"), float(lag[h].n) if h in lag else 0.0)
                for h in lag_hours]))
