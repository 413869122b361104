"""/console/g/{guild}/dead-letters/retry-all and /jobs/{id}: retry every entry matching the
list's filters, with a preview count and a confirmation first, then live progress (kept in
PostgreSQL: a reload, or another replica, shows the same)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.console.pages_dead_letters import filter_problem, staff_user, staff_write
from bot.console.routes import console_of, error_page, render
from domain.bulk_jobs import STALLED_SECONDS
from domain.console_sessions import ConsoleUser
from domain.dead_letter_reads import UNRESOLVED, UNRESOLVED_STATUSES
from domain.errors import DomainError
from domain.lifecycle import Source

router = APIRouter(prefix="/console/g/{guild_id}", include_in_schema=False)
BULK_STATUSES = (UNRESOLVED, *UNRESOLVED_STATUSES)


def _filters(values: dict[str, str]) -> dict[str, str | None] | None:
    """The list's filters (the same names), checked; None when one is not valid."""
    status = values.get("status") or UNRESOLVED
    operation = values.get("operation") or None
    signature = (values.get("signature") or "").strip() or None
    source = values.get("source") or None
    member = (values.get("member") or "").strip() or None
    if status not in BULK_STATUSES or (signature is not None and "\x00" in signature) \
            or filter_problem(status=UNRESOLVED, order="newest", cursor=None,
                              operation=operation, signature=signature, source=source,
                              member=member) is not None:
        return None
    return {"status": status, "operation": operation, "signature": signature,
            "source": source, "member": member}


@router.get("/dead-letters/retry-all", response_class=HTMLResponse)
async def preview(request: Request, guild_id: int) -> Response:
    user = await staff_user(request, guild_id)
    if not isinstance(user, ConsoleUser):
        return user
    filters = _filters(dict(request.query_params))
    if filters is None:
        return error_page(request, 400, "Bad filter", "Only unresolved entries are retried; "
                          "clear the filters and try again.", user)
    counted = await console_of(request).container.remediation.retry_all(
        guild_id, user.user_id, Source.CONSOLE, status=filters["status"],
        operation=filters["operation"], signature=filters["signature"],
        entry_source=filters["source"],
        user_id=int(filters["member"]) if filters["member"] else None, dry_run=True)
    return render(request, "retry_all.html", user=user, guild_id=guild_id, filters=filters,
                  matched=counted.matched)


@router.post("/dead-letters/retry-all")
async def start(request: Request, guild_id: int) -> Response:
    user = await staff_write(request, guild_id)
    if not isinstance(user, ConsoleUser):
        return user
    form = await request.form()
    filters = _filters({k: str(v) for k, v in form.items()})
    if filters is None:
        return error_page(request, 400, "Bad filter", "Only unresolved entries are "
                          "retried.", user)
    try:
        job = await console_of(request).container.services.bulk_jobs.start_retry_all(
            guild_id, user.user_id, filters, force=form.get("force") == "1")
    except DomainError as exc:
        return error_page(request, 409, "Not started", str(exc), user)
    return RedirectResponse(f"/console/g/{guild_id}/jobs/{job}", status_code=303)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job(request: Request, guild_id: int, job_id: int) -> Response:
    user = await staff_user(request, guild_id)
    if not isinstance(user, ConsoleUser):
        return user
    if not 0 < job_id < 2**63:
        return error_page(request, 404, "Not found", "No such job.", user)
    found = await console_of(request).container.services.bulk_jobs.get(guild_id, job_id)
    if found is None:
        return error_page(request, 404, "Not found", "No such job.", user)
    stalled = found.status == "running" and (
        datetime.now(UTC) - found.updated_at).total_seconds() > STALLED_SECONDS
    return render(request, "job.html", user=user, guild_id=guild_id, job=found,
                  stalled=stalled, refresh=found.status == "running" and not stalled)
