"""/console/g/{guild}/overview: charts of the guild's dead letters, transitions and
deliveries (domain/overview.py), each with its numbers as a table."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from bot.console import charts
from bot.console.pages_dead_letters import staff_user
from bot.console.routes import console_of, render
from domain.console_sessions import ConsoleUser
from domain.overview import Series

router = APIRouter(prefix="/console/g/{guild_id}", include_in_schema=False)


@router.get("/overview", response_class=HTMLResponse)
async def overview(request: Request, guild_id: int) -> Response:
    user = await staff_user(request, guild_id)
    if not isinstance(user, ConsoleUser):
        return user
    data = await console_of(request).container.services.overview.read(guild_id)
    labels = [d.day.strftime("%d %b") for d in data.days]
    new_vs_resolved = [
        Series("new", [(d.day.isoformat(), float(d.new_entries)) for d in data.days]),
        Series("resolved", [(d.day.isoformat(), float(d.resolved_entries))
                            for d in data.days])]
    # The SVG is built from numbers and escaped names (bot/console/charts.py).
    svgs = {
        "daily": Markup(charts.bars("New and resolved dead letters per day", labels,  # noqa: S704
                                    new_vs_resolved)),
        "signatures": Markup(charts.lines("Open entries by signature",  # noqa: S704
                                          data.open_by_signature)),
        "transitions": Markup(charts.lines("Transitions per hour by source",  # noqa: S704
                                           data.transitions_by_source)),
        "lag": Markup(charts.lines("Delivery lag per hour (p95, seconds)",  # noqa: S704
                                   [data.delivery_lag_p95])),
    }
    return render(request, "overview.html", user=user, guild_id=guild_id, data=data,
                  svgs=svgs)
