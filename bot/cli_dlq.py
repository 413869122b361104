"""`python -m bot dlq ...`: the ops CLI over RemediationService, for when Discord is down."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from bot import cli_bulk
from bot.cli_common import age, jsonable, print_json, run_in_container, snowflake, table
from bot.container import Container
from bot.settings import Settings
from domain.audit import AuditPage
from domain.commands import MAX_SNOWFLAKE
from domain.dead_letter_reads import ALL, ORDERS, UNRESOLVED, UNRESOLVED_STATUSES
from domain.entries import (
    BulkRetryResult,
    DeadLetterEntry,
    GroupRetryResult,
    Page,
    RemediationRecord,
)
from domain.errors import StaleEntry
from domain.lifecycle import Source
from domain.remediation import RETRY_ALL_LIMIT
from domain.vocabulary import DeadLetterStatus

STATUSES = [s.value for s in DeadLetterStatus]
AUDIT_COLUMNS = ("id", "at", "action", "actor_id", "source", "outcome", "change", "note")
LIST_COLUMNS = ("id", "status", "user_id", "operation", "from_state", "to_state", "reason_code",
                "attempts", "age")


def entry_id(value: str) -> int:
    value = value.removeprefix("#")
    if not value.isdigit() or not 0 < int(value) <= MAX_SNOWFLAKE:
        raise argparse.ArgumentTypeError(f"{value!r} is not a dead-letter id")
    return int(value)


def limit(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 100:
        raise argparse.ArgumentTypeError("limit must be between 1 and 100")
    return int(value)


def register(sub: Any) -> None:
    dlq = sub.add_parser("dlq", help="list, inspect and remediate dead letters")
    cmds = dlq.add_subparsers(dest="dlq_command", required=True,
                              parser_class=type(dlq))

    def add(name: str, handler: Callable[..., Awaitable[Any]], help_: str,
            actor: bool = False) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = cmds.add_parser(name, help=help_)
        p.add_argument("--guild", type=snowflake, required=True, help="guild id")
        p.add_argument("--json", action="store_true", help="print JSON")
        if actor:
            p.add_argument("--actor", type=snowflake, required=True,
                           help="Discord id of the person acting (audited)")
        p.set_defaults(handler=run, action=handler, quiet_logs=True)
        return p

    p = add("list", _list, "unresolved entries (open and retrying), newest first")
    p.add_argument("--status", choices=[*STATUSES, UNRESOLVED, ALL],
                   help="one status, unresolved (the default) or all")
    _filters(p)
    p.add_argument("--order", choices=ORDERS, default="newest")
    p.add_argument("--limit", type=limit, default=20)
    p.add_argument("--cursor", help="next_cursor of the previous page")
    add("show", _show, "every field of one entry, its stack trace and its history"
        ).add_argument("id", type=entry_id)
    p = add("retry", _retry, "replay one entry now (exit 3 if it is stale)", actor=True)
    p.add_argument("id", type=entry_id)
    p.add_argument("--force", action="store_true",
                   help="replay even if the member changed since the entry was recorded")
    p = add("retry-group", _retry_group, "replay every open entry of a signature (stale "
            "entries are skipped and listed)", actor=True)
    p.add_argument("signature")
    p.add_argument("--force", action="store_true", help="replay stale entries too")
    for name, fn in (("resolve", _resolve), ("dismiss", _dismiss)):
        p = add(name, fn, f"{name} one entry with a note", actor=True)
        p.add_argument("id", type=entry_id)
        p.add_argument("--note", required=True, help="1..1000 characters")
    add("reopen", _reopen, "reopen a dismissed or resolved entry", actor=True).add_argument(
        "id", type=entry_id)
    p = add("delete", _delete, "delete one entry with a note (not one being retried); its "
            "audit rows stay", actor=True)
    p.add_argument("id", type=entry_id)
    p.add_argument("--note", required=True, help="1..1000 characters")
    p = add("retry-all", cli_bulk.retry_all,
            "replay the unresolved entries matching the filters, oldest first (at most "
            f"{RETRY_ALL_LIMIT} a run; exit 1 if any failed; stale ones are skipped and "
            "counted unless --force)", actor=True)
    p.add_argument("--status", choices=[*UNRESOLVED_STATUSES, UNRESOLVED],
                   help="unresolved (the default): open ones are replayed, retrying ones "
                        "skipped")
    _filters(p)
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--dry-run", action="store_true",
                   help="print how many match and change nothing")
    p.add_argument("--force", action="store_true", help="replay stale entries too")
    p = add("history", _history, "the audit rows of one entry, newest first (kept after it "
            "is deleted)")
    p.add_argument("id", type=entry_id)
    p.add_argument("--limit", type=limit, default=50)
    p.add_argument("--before", help="next_cursor of the previous page")
    add("stats", _stats, "counts by status and signature, and the total")


def _filters(p: argparse.ArgumentParser) -> None:
    """The list's filters (shared by list and retry-all)."""
    p.add_argument("--operation")
    p.add_argument("--source", choices=[s.value for s in Source])
    p.add_argument("--signature")
    p.add_argument("--user", type=snowflake)


def run(args: argparse.Namespace, settings: Settings) -> int:
    result, code = run_in_container(settings, lambda c: args.action(c, args),
                                    refusals={StaleEntry: _stale})
    if code is not None:
        return code
    if args.json:
        data = jsonable(result)
        if isinstance(result, Page):  # pages leave the stack trace out: `show` has it
            for item in data["items"]:
                item.pop("stack_trace", None)
        print_json(data)
    else:
        print(_render(args.dlq_command, result))
    # 1: a replay that failed, or a bulk run with any failure (stale entries it skipped
    # are printed, not an error).
    failed = (args.dlq_command == "retry" and not result.resolved) or \
        (args.dlq_command in ("retry-group", "retry-all")
         and isinstance(result, GroupRetryResult | BulkRetryResult) and result.failed > 0)
    return 1 if failed else 0


def _stale(exc: Exception) -> int:
    assert isinstance(exc, StaleEntry)
    print(f"lifeline: {exc}", file=sys.stderr)
    for h in exc.recent_transitions:
        print(f"  v{h.version} {h.created_at:%Y-%m-%d %H:%M:%S} {h.operation.value} "
              f"{h.from_state.value if h.from_state else 'new'} -> {h.to_state.value} "
              f"({h.source.value}{f' by {h.actor_id}' if h.actor_id else ''})",
              file=sys.stderr)
    print("  replay anyway with --force, or dismiss it", file=sys.stderr)
    return 3


async def _list(c: Container, a: argparse.Namespace) -> Page:
    return await c.remediation.page(a.guild, status=a.status, operation=a.operation,
                                    source=a.source, signature=a.signature, user_id=a.user,
                                    limit=a.limit, cursor=a.cursor, order=a.order)


async def _show(c: Container, a: argparse.Namespace) -> dict[str, Any]:
    entry, history = await c.remediation.show(a.guild, a.id)
    return {"entry": entry, "history": history}


async def _retry(c: Container, a: argparse.Namespace) -> Any:
    return await c.remediation.retry(a.guild, a.id, a.actor, Source.CLI, force=a.force)


async def _retry_group(c: Container, a: argparse.Namespace) -> Any:
    def progress(done: int, total: int, resolved: int) -> None:
        if not a.json and (done == total or done % 100 == 0):
            print(f"  {done}/{total} retried, {resolved} resolved", file=sys.stderr)

    return await c.remediation.retry_group(a.guild, a.signature, a.actor, Source.CLI,
                                           progress, force=a.force)


async def _resolve(c: Container, a: argparse.Namespace) -> DeadLetterEntry:
    return await c.remediation.resolve(a.guild, a.id, a.actor, a.note, Source.CLI)


async def _dismiss(c: Container, a: argparse.Namespace) -> DeadLetterEntry:
    return await c.remediation.dismiss(a.guild, a.id, a.actor, a.note, Source.CLI)


async def _reopen(c: Container, a: argparse.Namespace) -> DeadLetterEntry:
    return await c.remediation.reopen(a.guild, a.id, a.actor, Source.CLI)


async def _delete(c: Container, a: argparse.Namespace) -> DeadLetterEntry:
    return await c.remediation.delete(a.guild, a.id, a.actor, a.note, Source.CLI)


async def _history(c: Container, a: argparse.Namespace) -> AuditPage:
    return await c.audit.page(a.guild, dead_letter_id=a.id, limit=a.limit, before=a.before)


async def _stats(c: Container, a: argparse.Namespace) -> Any:
    return await c.remediation.stats(a.guild)


def _entry_rows(items: list[DeadLetterEntry]) -> list[dict[str, Any]]:
    return [{**e.as_dict(), "id": f"#{e.id}", "age": age(e.created_at)} for e in items]


def _render(command: str, result: Any) -> str:
    if isinstance(result, Page):
        if not result.items:
            return "no dead letters match"
        out = table(_entry_rows(result.items), LIST_COLUMNS)
        out += f"\n{len(result.items)} shown of {result.total}"
        if result.next_cursor:
            out += f"; next page: --cursor {result.next_cursor}"
        return out
    if command == "show":
        entry: DeadLetterEntry = result["entry"]
        history: list[RemediationRecord] = result["history"]
        lines = [f"{k:20} {v}" for k, v in jsonable(entry).items()
                 if k not in ("payload", "stack_trace")]
        lines.append(f"{'payload':20} {json.dumps(entry.payload, sort_keys=True)}")
        lines.append("stack trace:" if entry.stack_trace else "stack trace: (none kept)")
        if entry.stack_trace:
            lines += [f"  {line}" for line in entry.stack_trace.rstrip().splitlines()]
        lines.append("history:" if history else "history: (none)")
        lines += [f"  {h.created_at:%Y-%m-%d %H:%M:%S} {h.action} by {h.actor_id} "
                  f"({h.source}): {h.outcome}" + (f" - {h.note}" if h.note else "")
                  for h in history]
        return "\n".join(lines)
    if isinstance(result, AuditPage):
        if not result.items:
            return "no audit rows"
        out = table([{**asdict(r), "at": f"{r.created_at:%Y-%m-%d %H:%M:%S}",
                      "change": f"{r.status_before} -> {r.status_after}"}
                     for r in result.items], AUDIT_COLUMNS)
        if result.next_cursor:
            out += f"\nolder rows: --before {result.next_cursor}"
        return out
    if command == "retry-all":
        return cli_bulk.render(result)
    if command == "delete":
        return f"#{result.id} deleted (it was {result.status}); its audit rows are kept"
    if command == "retry":
        state = "resolved" if result.resolved else "still open"
        return f"#{result.entry.id} {state}: {result.detail}"
    if command == "retry-group":
        return (f"signature {result.signature}: {result.total} retried, {result.resolved} "
                f"resolved, {result.failed} failed, {result.skipped} skipped"
                + (f", {result.stale} stale (their member changed since; not replayed: "
                   "--force replays them)" if result.stale else ""))
    if command == "stats":
        lines = [f"total: {result.total}",
                 "by status: " + ", ".join(f"{k} {v}" for k, v in result.by_status.items())]
        oldest = result.oldest_open_age_seconds
        lines.append("oldest open: " + (f"{int(oldest)}s" if oldest is not None else "none"))
        lines.append(f"retention: {result.retention_days} days"
                     if result.retention_days else "retention: keep everything")
        if result.by_signature:
            lines.append(table([asdict(s) for s in result.by_signature],
                               ("signature", "open", "total")))
        return "\n".join(lines)
    entry = result
    return f"#{entry.id} is now {entry.status}"
