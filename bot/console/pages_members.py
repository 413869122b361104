"""/console/g/{guild}/members/{user}: what `/member show` gives (state, version, ledger),
with the member's dead letters."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from bot.console.pages_dead_letters import MAX_ID, staff_user
from bot.console.routes import console_of, error_page, render
from domain.console_sessions import ConsoleUser

router = APIRouter(prefix="/console/g/{guild_id}", include_in_schema=False)
LEDGER_ROWS = 50


@router.get("/members/{user_id}", response_class=HTMLResponse)
async def member(request: Request, guild_id: int, user_id: int) -> Response:
    user = await staff_user(request, guild_id)
    if not isinstance(user, ConsoleUser):
        return user
    if not 0 < user_id <= MAX_ID:
        return error_page(request, 404, "Not found", "No such member.", user)
    container = console_of(request).container
    snapshot = await container.transitions.get_member(guild_id, user_id)
    ledger = await container.transitions.history(guild_id, user_id, LEDGER_ROWS)
    entries = await container.remediation.page(guild_id, status="all", user_id=user_id,
                                               limit=25)
    if snapshot is None and not entries.items:
        return error_page(request, 404, "Not found", "Lifeline has no record of this "
                          "member in this server.", user)
    return render(request, "member.html", user=user, guild_id=guild_id, member_id=user_id,
                  snapshot=snapshot, ledger=ledger, entries=entries.items)
