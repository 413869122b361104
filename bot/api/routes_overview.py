"""/api/v1/guilds/{guild_id}/overview: the numbers of the console's overview charts."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from bot.api.deps import ContainerDep, GuildId

router = APIRouter(prefix="/guilds/{guild_id}", tags=["overview"])


class DayOut(BaseModel):
    day: str
    new_entries: int
    resolved_entries: int
    open_entries: int | None = Field(description="open at that day's last snapshot; null "
                                                  "when there was none")


class SeriesOut(BaseModel):
    name: str
    points: list[tuple[str, float]] = Field(description="(label, value), oldest first")


class OverviewOut(BaseModel):
    days: list[DayOut] = Field(description="the last 30 days, oldest first")
    open_by_signature: list[SeriesOut] = Field(description="the 5 signatures with the most "
                                                           "open entries, per day")
    transitions_by_source: list[SeriesOut] = Field(description="per hour, last 48 hours")
    delivery_lag_p95: SeriesOut = Field(description="seconds from queued to delivered, "
                                                    "per hour, last 24 hours")
    deliveries_per_hour: SeriesOut
    generated_at: datetime


@router.get("/overview", response_model=OverviewOut,
            summary="The console overview's numbers (from snapshots refreshed every 5 "
                    "minutes)")
async def overview(guild_id: GuildId, c: ContainerDep) -> OverviewOut:
    data = await c.services.overview.read(guild_id)
    return OverviewOut(
        days=[DayOut(day=d.day.isoformat(), new_entries=d.new_entries,
                     resolved_entries=d.resolved_entries, open_entries=d.open_entries)
              for d in data.days],
        open_by_signature=[SeriesOut(name=s.name, points=s.points)
                           for s in data.open_by_signature],
        transitions_by_source=[SeriesOut(name=s.name, points=s.points)
                               for s in data.transitions_by_source],
        delivery_lag_p95=SeriesOut(name=data.delivery_lag_p95.name,
                                   points=data.delivery_lag_p95.points),
        deliveries_per_hour=SeriesOut(name=data.deliveries_per_hour.name,
                                      points=data.deliveries_per_hour.points),
        generated_at=data.generated_at)
