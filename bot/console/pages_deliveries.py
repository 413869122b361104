"""/console/g/{guild}/deliveries: role changes and log lines Discord refused, with their
cause in words and their attempt timeline, a page at a time, and their retry, one or all
(DeliveryService, source `console`, the logged-in user as actor)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from bot.console.pages_dead_letters import MAX_ID, staff_user, staff_write
from bot.console.routes import console_of, error_page, render
from domain.console_sessions import ConsoleUser
from domain.deliveries import FAILED_STATUSES, REQUEUED, delivery_ref, describe, requeued_before
from domain.errors import DomainError, InvalidInput
from domain.lifecycle import Source
from domain.records import Delivery, DeliveryTimeline, RetryResult
from domain.vocabulary import OutboxKind

router = APIRouter(prefix="/console/g/{guild_id}", include_in_schema=False)

PAGE_SIZE = 50
KINDS = {"role_sync": "Role changes", "mirror": "Log lines"}


@router.get("/deliveries", response_class=HTMLResponse)
async def deliveries(request: Request, guild_id: int) -> Response:
    user = await staff_user(request, guild_id)
    if not isinstance(user, ConsoleUser):
        return user
    kind = request.query_params.get("kind") or ""
    if kind not in ("", *KINDS):
        return error_page(request, 400, "Bad filter", "Show role changes, log lines, or "
                          "every kind.", user)
    return await _page(request, user, guild_id, kind, request.query_params.get("cursor"),
                       None)


async def _page(request: Request, user: ConsoleUser, guild_id: int, kind: str,
                cursor: str | None, done: str | None) -> Response:
    """A page of failed deliveries, with what an action just did (never text from the
    URL)."""
    service = console_of(request).container.deliveries
    try:
        page = await service.page(guild_id, statuses=FAILED_STATUSES,
                                  kind=OutboxKind(kind) if kind else None, cursor=cursor,
                                  limit=PAGE_SIZE)
    except InvalidInput:
        return error_page(request, 400, "Bad page", "That page link is not one the list "
                          "gave; start from the first page.", user)
    timelines = await service.timelines(guild_id, [d.id for d in page.items])
    rows = [_row(d, timelines[d.id]) for d in page.items]
    failed = await service.failed_count(guild_id, OutboxKind(kind) if kind else None)
    return render(request, "deliveries.html", user=user, guild_id=guild_id, rows=rows,
                  done=done, kind=kind, kinds=KINDS, next_cursor=page.next_cursor,
                  failed=failed, first_page=not cursor, requeued_text=REQUEUED)


def _row(d: Delivery, timeline: DeliveryTimeline) -> dict[str, Any]:
    """One delivery as the page shows it: each attempt with whether a re-queue came just
    before it (the marker every timeline shows)."""
    attempts = timeline.attempts
    return {"d": d, "ref": delivery_ref(d.id), "cause": describe(d.cause),
            "attempts": [(a, requeued_before(attempts, i)) for i, a in enumerate(attempts)],
            "earlier": timeline.earlier}


@router.post("/deliveries/{delivery_id}/retry")
async def retry(request: Request, guild_id: int, delivery_id: int) -> Response:
    checked = await _retry_form(request, guild_id)
    if isinstance(checked, Response):
        return checked
    user, kind = checked
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
    return await _page(request, user, guild_id, kind, None, done)


@router.post("/deliveries/retry-failed")
async def retry_failed(request: Request, guild_id: int) -> Response:
    """Every failed delivery of the guild (of one kind, if the form says), oldest first, up
    to the service's bound a click."""
    checked = await _retry_form(request, guild_id)
    if isinstance(checked, Response):
        return checked
    user, kind = checked
    result = await console_of(request).container.deliveries.retry_failed(
        guild_id, user.user_id, Source.CONSOLE, kind=OutboxKind(kind) if kind else None)
    return await _page(request, user, guild_id, kind, None, retried(result, kind))


async def _retry_form(request: Request, guild_id: int
                      ) -> tuple[ConsoleUser, str] | Response:
    """A retry's POST: the user (staff write checks passed) and the form's kind filter (""
    for every kind); else the answer that refuses it."""
    user = await staff_write(request, guild_id)
    if not isinstance(user, ConsoleUser):
        return user
    kind = str((await request.form()).get("kind") or "")
    if kind not in ("", *KINDS):
        return error_page(request, 400, "Bad form", "Retry role changes, log lines, or "
                          "every kind.", user)
    return user, kind


def retried(result: RetryResult, kind: str = "") -> str:
    """What a retry of many did, in one sentence."""
    if not result.matched:
        return f"Nothing to retry: no {KINDS[kind].lower() if kind else 'deliveries'} " \
               "had failed."
    parts = [f"{result.requeued} queued again"]
    if result.stale:
        parts.append(f"{result.stale} skipped (the member changed since)")
    if result.waiting:
        parts.append(f"{result.waiting} wait for a log channel")
    more = "; more are left: retry again" if result.more else ""
    return f"Of {result.matched} failed: " + ", ".join(parts) + more + "."
