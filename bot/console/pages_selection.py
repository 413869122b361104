"""/console/g/{guild}/dead-letters/selected: act on the entries ticked in the list (retry,
resolve or dismiss, with a note for the last two), one by one through RemediationService,
as the logged-in user with source `console`; stale entries are skipped, not replayed."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from bot.console.pages_dead_letters import MAX_ID, staff_write
from bot.console.routes import console_of, error_page, render
from domain.console_sessions import ConsoleUser
from domain.errors import DomainError, StaleEntry
from domain.lifecycle import Source

router = APIRouter(prefix="/console/g/{guild_id}", include_in_schema=False)
MAX_SELECTED = 100
SELECTION_ACTIONS = ("retry", "resolve", "dismiss")


@router.post("/dead-letters/selected")
async def act_on_selection(request: Request, guild_id: int) -> Response:
    user = await staff_write(request, guild_id)
    if not isinstance(user, ConsoleUser):
        return user
    form = await request.form()
    action = str(form.get("action") or "")
    raw = [str(v) for v in form.getlist("id")]
    if action not in SELECTION_ACTIONS or not raw or len(raw) > MAX_SELECTED or not all(
            v.isascii() and v.isdigit() and 0 < int(v) <= MAX_ID for v in raw):
        return error_page(request, 400, "Nothing done", f"Tick 1 to {MAX_SELECTED} entries "
                          "and choose retry, resolve or dismiss.", user)
    note = str(form.get("note") or "")
    service = console_of(request).container.remediation
    results: list[tuple[int, str]] = []
    for entry_id in dict.fromkeys(int(v) for v in raw):
        try:
            if action == "retry":
                outcome = await service.retry(guild_id, entry_id, user.user_id,
                                              Source.CONSOLE)
                results.append((entry_id, "resolved" if outcome.resolved
                                else f"failed again: {outcome.detail}"))
            elif action == "resolve":
                await service.resolve(guild_id, entry_id, user.user_id, note, Source.CONSOLE)
                results.append((entry_id, "resolved"))
            else:
                await service.dismiss(guild_id, entry_id, user.user_id, note, Source.CONSOLE)
                results.append((entry_id, "dismissed"))
        except StaleEntry:
            results.append((entry_id, "stale: not replayed (open it to replay anyway)"))
        except DomainError as exc:
            results.append((entry_id, f"not done: {exc}"))
    return render(request, "selection.html", user=user, guild_id=guild_id, action=action,
                  results=results)
