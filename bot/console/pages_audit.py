"""/console/g/{guild}/audit: who did what to which dead letter or delivery, filterable, with
a CSV export of the same rows."""

from __future__ import annotations

import csv
import io

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from bot.console.pages_dead_letters import staff_user
from bot.console.routes import console_of, error_page, render
from domain.audit import AuditPage
from domain.console_sessions import ConsoleUser
from domain.errors import InvalidInput

router = APIRouter(prefix="/console/g/{guild_id}", include_in_schema=False)
CSV_ROWS = 5000
COLUMNS = ("id", "created_at", "target_kind", "target_id", "actor_id", "source", "action",
           "outcome", "status_before", "status_after", "note", "error_message",
           "correlation_id")


def _int(value: str | None) -> int | None:
    if not value:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 19):
        raise InvalidInput("ids are digits")
    return int(value)


async def _read(request: Request, guild_id: int, limit: int) -> AuditPage:
    q = request.query_params
    return await console_of(request).container.audit.page(
        guild_id, actor_id=_int(q.get("actor_id")), dead_letter_id=_int(q.get("dead_letter_id")),
        target_kind=q.get("target_kind") or None, limit=limit, before=q.get("cursor") or None)


@router.get("/audit", response_class=HTMLResponse)
async def audit(request: Request, guild_id: int) -> Response:
    user = await staff_user(request, guild_id)
    if not isinstance(user, ConsoleUser):
        return user
    try:
        page = await _read(request, guild_id, 50)
    except InvalidInput as exc:
        return error_page(request, 400, "Bad filter", str(exc), user)
    q = request.query_params
    return render(request, "audit.html", user=user, guild_id=guild_id, page=page,
                  filters={k: q.get(k, "") for k in ("actor_id", "dead_letter_id",
                                                     "target_kind")})


@router.get("/audit.csv")
async def audit_csv(request: Request, guild_id: int) -> Response:
    """The newest CSV_ROWS rows matching the filters. Cells that a spreadsheet would run
    as a formula (=, +, -, @, tab or carriage return first) are prefixed with a quote."""
    user = await staff_user(request, guild_id)
    if not isinstance(user, ConsoleUser):
        return user
    try:
        rows = []
        page = await _read(request, guild_id, 100)
        rows.extend(page.items)
        while page.next_cursor and len(rows) < CSV_ROWS:
            page = await console_of(request).container.audit.page(
                guild_id, limit=100, before=page.next_cursor,
                actor_id=_int(request.query_params.get("actor_id")),
                dead_letter_id=_int(request.query_params.get("dead_letter_id")),
                target_kind=request.query_params.get("target_kind") or None)
            rows.extend(page.items)
    except InvalidInput as exc:
        return error_page(request, 400, "Bad filter", str(exc), user)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for r in rows[:CSV_ROWS]:
        writer.writerow([csv_cell(getattr(r, c)) for c in COLUMNS])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "content-disposition": f'attachment; filename="lifeline-audit-{guild_id}.csv"'})


def csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
