"""/console/g/{guild}/dead-letters: the list with filters and keyset pages, one entry with
its payload, stack trace and history, and the remediation actions. Every action goes through
RemediationService as `/dlq` does, with source `console` and the logged-in user as actor;
who may see and act is re-checked on the server for every page and every write."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.console.routes import (
    console_of,
    current_user,
    error_page,
    has_nul,
    refuse_unsafe,
    render,
)
from bot.ids import discord_ids_as_strings
from domain.console_sessions import ConsoleUser
from domain.dead_letter_reads import ALL, ORDERS, UNRESOLVED
from domain.errors import DomainError, StaleEntry
from domain.lifecycle import Operation, Source
from domain.replay_preview import preview
from domain.vocabulary import DeadLetterStatus

log = logging.getLogger(__name__)
router = APIRouter(prefix="/console/g/{guild_id}", include_in_schema=False)
STATUSES = [UNRESOLVED, *(s.value for s in DeadLetterStatus), ALL]
PAGE_SIZE = 25
LEDGER_ROWS = 20  # the member's latest transitions, around and after the failure
MAX_ID = 2**63 - 1


async def staff_user(request: Request, guild_id: int, *, fresh: bool = False
                      ) -> ConsoleUser | Response:
    """The logged-in user if staff of the guild; else the answer: the login page, or a 404
    exactly like an unknown guild's."""
    user = await current_user(request)
    if user is None:
        return RedirectResponse("/console", status_code=303)
    if not 0 < guild_id <= MAX_ID or not await console_of(request).staff.is_staff(
            user.user_id, guild_id, fresh=fresh):
        log.info("console: user %s refused guild %s (not staff there)", user.user_id,
                 guild_id)
        return error_page(request, 404, "Not found", "There is no such server in your console.",
                      user)
    return user


async def staff_write(request: Request, guild_id: int) -> ConsoleUser | Response:
    """A state-changing request: the user, staff of the guild as Discord shows it now (not
    the cached answer), with the session's CSRF token and the console's Origin; else the
    answer that refuses it."""
    user = await staff_user(request, guild_id, fresh=True)
    if not isinstance(user, ConsoleUser):
        return user
    refused = await refuse_unsafe(request, user)
    return refused if refused is not None else user


@router.get("", response_class=HTMLResponse)
async def guild_home(guild_id: int) -> Response:
    return RedirectResponse(f"/console/g/{guild_id}/dead-letters", status_code=303)


@router.get("/dead-letters", response_class=HTMLResponse)
async def dead_letters(request: Request, guild_id: int) -> Response:
    user = await staff_user(request, guild_id)
    if not isinstance(user, ConsoleUser):
        return user
    q = request.query_params
    if has_nul(request):
        return error_page(request, 400, "Bad filter", "A filter holds a NUL character.",
                          user)
    status = q.get("status") or UNRESOLVED
    operation = q.get("operation") or None
    signature = (q.get("signature") or "").strip() or None
    order = q.get("order") or "newest"
    cursor = q.get("cursor") or None
    source = q.get("source") or None
    member = (q.get("member") or "").strip() or None
    problem = filter_problem(status=status, order=order, operation=operation, cursor=cursor,
                             signature=signature, source=source, member=member)
    if problem is not None:
        return error_page(request, 400, "Bad filter", problem + "; clear it and try again.",
                          user)
    page = await console_of(request).container.remediation.page(
        guild_id, status=status, operation=operation, signature=signature, source=source,
        user_id=int(member) if member else None, limit=PAGE_SIZE, cursor=cursor, order=order)
    filters = {"status": status, "operation": operation or "", "signature": signature or "",
               "order": order, "source": source or "", "member": member or ""}
    return render(request, "dead_letters.html", user=user, guild_id=guild_id, page=page,
                  filters=filters, statuses=STATUSES, operations=[o.value for o in Operation],
                  orders=list(ORDERS), sources=[x.value for x in Source])


def filter_problem(*, status: str, order: str, operation: str | None, cursor: str | None,
                   signature: str | None, source: str | None, member: str | None
                   ) -> str | None:
    """What is wrong with the list's filters, naming the filter (None: nothing)."""
    if status not in STATUSES:
        return "Status must be one of: " + ", ".join(STATUSES)
    if order not in ORDERS:
        return "Order must be newest or oldest"
    if operation is not None and operation not in {o.value for o in Operation}:
        return "Operation is not one Lifeline knows"
    if source is not None and source not in {x.value for x in Source}:
        return "Source is not one Lifeline knows"
    if signature is not None and len(signature) > 300:
        return "Signature is longer than any signature (300 characters)"
    if member is not None and not (member.isascii() and member.isdigit()
                                   and 0 < int(member) <= MAX_ID):
        return "Member id is a Discord user id (digits), not a name"
    if cursor is not None and not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 19):
        return "The page link is not one the list gave"
    return None


@router.get("/dead-letters/{entry_id}", response_class=HTMLResponse)
async def entry(request: Request, guild_id: int, entry_id: int) -> Response:
    user = await staff_user(request, guild_id)
    if not isinstance(user, ConsoleUser):
        return user
    return await _entry_page(request, user, guild_id, entry_id)


async def _entry_page(request: Request, user: ConsoleUser, guild_id: int, entry_id: int,
                      status: int = 200, **extra: Any) -> Response:
    try:
        found, history = await console_of(request).container.remediation.show(guild_id,
                                                                             entry_id)
    except DomainError:
        return error_page(request, 404, "Not found", f"There is no dead letter #{entry_id} in "
                      "this server.", user)
    payload = json.dumps(discord_ids_as_strings(found.payload), indent=2, sort_keys=True)
    container = console_of(request).container
    now = await preview(container.remediation, found)
    ledger = await container.transitions.history(guild_id, found.user_id, LEDGER_ROWS)
    return render(request, "entry.html", status, user=user, guild_id=guild_id, entry=found,
                  history=history, payload=payload, now=now, ledger=ledger, **extra)


ACTIONS = ("retry", "resolve", "dismiss", "reopen", "delete")


@router.post("/dead-letters/{entry_id}/{action}")
async def act(request: Request, guild_id: int, entry_id: int, action: str) -> Response:
    user = await staff_write(request, guild_id)
    if not isinstance(user, ConsoleUser):
        return user
    if action not in ACTIONS:
        return error_page(request, 404, "Not found", "No such action.", user)
    form = await request.form()
    note = str(form.get("note") or "")
    service = console_of(request).container.remediation
    actor = user.user_id
    try:
        if action == "retry":
            outcome = await service.retry(guild_id, entry_id, actor, Source.CONSOLE,
                                          force=form.get("force") == "1")
            message = (f"Resolved: {outcome.detail}." if outcome.resolved else
                       f"Replayed, and it failed again: {outcome.detail}")
        elif action == "resolve":
            await service.resolve(guild_id, entry_id, actor, note, Source.CONSOLE)
            message = "Resolved."
        elif action == "dismiss":
            await service.dismiss(guild_id, entry_id, actor, note, Source.CONSOLE)
            message = "Dismissed."
        elif action == "reopen":
            await service.reopen(guild_id, entry_id, actor, Source.CONSOLE, note or None)
            message = "Reopened."
        else:
            await service.delete(guild_id, entry_id, actor, note, Source.CONSOLE)
            return RedirectResponse(f"/console/g/{guild_id}/dead-letters?deleted={entry_id}",
                                    status_code=303)
    except StaleEntry as stale:
        return await _entry_page(request, user, guild_id, entry_id, 409, stale=stale)
    except DomainError as exc:
        return await _entry_page(request, user, guild_id, entry_id, 409, problem=str(exc))
    return await _entry_page(request, user, guild_id, entry_id, done=message)
