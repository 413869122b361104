"""/console/g/{guild}/deliveries: role changes and log lines Discord refused, with their
cause in words and their attempt timeline, and their retry (DeliveryService, source
`console`, the logged-in user as actor)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from bot.console.pages_dead_letters import MAX_ID, staff_user, staff_write
from bot.console.routes import console_of, error_page, render
from domain.console_sessions import ConsoleUser
from domain.deliveries import FAILED_STATUSES, delivery_ref, describe
from domain.errors import DomainError
from domain.lifecycle import Source

router = APIRouter(prefix="/console/g/{guild_id}", include_in_schema=False)


@router.get("/deliveries", response_class=HTMLResponse)
async def deliveries(request: Request, guild_id: int) -> Response:
    user = await staff_user(request, guild_id)
    if not isinstance(user, ConsoleUser):
        return user
    return await _page(request, user, guild_id, None)


async def _page(request: Request, user: ConsoleUser, guild_id: int,
                done: str | None) -> Response:
    """The page, with what an action just did (never text from the URL)."""
    service = console_of(request).container.deliveries
    page = await service.page(guild_id, statuses=FAILED_STATUSES, limit=50)
    rows = []
    for d in page.items:
        _, attempts = await service.show(guild_id, d.id)
        rows.append({"d": d, "ref": delivery_ref(d.id), "cause": describe(d.cause),
                     "attempts": attempts})
    return render(request, "deliveries.html", user=user, guild_id=guild_id, rows=rows,
                  done=done)


@router.post("/deliveries/{delivery_id}/retry")
async def retry(request: Request, guild_id: int, delivery_id: int) -> Response:
    user = await staff_write(request, guild_id)
    if not isinstance(user, ConsoleUser):
        return user
    if not 0 < delivery_id <= MAX_ID:
        return error_page(request, 404, "Not found", "No such delivery.", user)
    try:
        result = await console_of(request).container.deliveries.retry(
            guild_id, delivery_id, user.user_id, Source.CONSOLE)
    except DomainError as exc:
        return error_page(request, 409, "Not retried", str(exc), user)
    ref = delivery_ref(delivery_id)
    done = (f"{ref} no longer applies (the member changed since): skipped" if result.stale
            else f"{ref} waits for a log channel" if result.waiting
            else f"{ref} queued again")
    return await _page(request, user, guild_id, done)
