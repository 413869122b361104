"""`python -m bot deliveries ...`: failed side effects (role changes, log-channel lines) from
the ops CLI: list them, see one's cause and attempts, retry one or all of a guild's."""

from __future__ import annotations

import argparse
from typing import Any

from bot.cli_common import age, jsonable, print_json, run_in_container, snowflake, table
from bot.container import Container
from bot.settings import Settings
from domain.deliveries import (
    FAILED_STATUSES,
    MAX_PAGE,
    REQUEUED,
    delivery_ref,
    describe,
    parse_delivery_id,
    requeued_before,
)
from domain.errors import InvalidInput
from domain.lifecycle import Source
from domain.records import Delivery, DeliveryAttempt, DeliveryPage, RetryResult
from domain.vocabulary import DeliveryStatus, OutboxKind

COLUMNS = ("id", "kind", "status", "what", "cause", "attempts", "age")


def delivery_id(value: str) -> int:
    try:
        return parse_delivery_id(value)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def page_size(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise argparse.ArgumentTypeError(f"limit must be between 1 and {MAX_PAGE}")
    return int(value)


def register(sub: Any) -> None:
    top = sub.add_parser("deliveries", help="failed role changes and log-channel lines: list, "
                                            "inspect, retry")
    cmds = top.add_subparsers(dest="deliveries_command", required=True,
                              parser_class=type(top))

    def add(name: str, help_: str, actor: bool = False) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = cmds.add_parser(name, help=help_)
        p.add_argument("--guild", type=snowflake, required=True, help="guild id")
        p.add_argument("--json", action="store_true", help="print JSON")
        if actor:
            p.add_argument("--actor", type=snowflake, required=True,
                           help="Discord id of the person acting (audited)")
        p.set_defaults(handler=run, quiet_logs=True)
        return p

    p = add("list", "failed deliveries (failed and dead_lettered), newest first")
    p.add_argument("--status", choices=[*(s.value for s in DeliveryStatus), "all"],
                   help="one status instead of the failed ones, or all")
    p.add_argument("--kind", choices=[k.value for k in OutboxKind])
    p.add_argument("--limit", type=page_size, default=20)
    p.add_argument("--cursor", help="next_cursor of the previous page")
    add("show", "one delivery: its cause and every attempt").add_argument(
        "id", type=delivery_id, help="D42 or 42")
    add("retry", "retry one failed delivery (exit 3 if it no longer applies)",
        actor=True).add_argument("id", type=delivery_id, help="D42 or 42")
    add("retry-failed", "retry every failed delivery of the guild, oldest first",
        actor=True).add_argument("--kind", choices=[k.value for k in OutboxKind])


def run(args: argparse.Namespace, settings: Settings) -> int:
    result, code = run_in_container(settings, lambda c: _act(c, args))
    if code is not None:
        return code
    if args.json:
        print_json(jsonable(result))
    else:
        print(_render(args.deliveries_command, result))
    # 3: the one delivery asked for no longer applies (skipped, as stale).
    if args.deliveries_command == "retry" and result.stale:
        return 3
    return 0


async def _act(c: Container, a: argparse.Namespace) -> Any:
    command = a.deliveries_command
    if command == "list":
        statuses = list(DeliveryStatus) if a.status == "all" \
            else [DeliveryStatus(a.status)] if a.status else FAILED_STATUSES
        return await c.deliveries.page(a.guild, statuses=statuses,
                                       kind=OutboxKind(a.kind) if a.kind else None,
                                       cursor=a.cursor, limit=a.limit)
    if command == "show":
        delivery, timeline = await c.deliveries.show(a.guild, a.id)
        return {"delivery": delivery, "cause_text": describe(delivery.cause),
                "attempts": timeline.attempts, "earlier_attempts": timeline.earlier}
    if command == "retry":
        return await c.deliveries.retry(a.guild, a.id, a.actor, Source.CLI)
    return await c.deliveries.retry_failed(a.guild, a.actor, Source.CLI,
                                           kind=OutboxKind(a.kind) if a.kind else None)


def what(d: Delivery) -> str:
    if d.kind is OutboxKind.ROLE_SYNC:
        return f"{d.action} role {d.role_id} for {d.user_id}"
    return f"{d.record} line to {d.channel_id}"


def _render(command: str, result: Any) -> str:
    if isinstance(result, DeliveryPage):
        if not result.items:
            return "no deliveries match"
        rows = [{"id": delivery_ref(d.id), "kind": d.kind.value, "status": d.status.value,
                 "what": what(d), "cause": d.cause, "attempts": d.attempts,
                 "age": age(d.created_at)} for d in result.items]
        out = table(rows, COLUMNS)
        if result.next_cursor:
            out += f"\nnext page: --cursor {result.next_cursor}"
        return out
    if command == "show":
        d: Delivery = result["delivery"]
        lines = [f"{delivery_ref(d.id)} {d.kind.value} {d.status.value}: {what(d)}"]
        if d.cause is not None or d.status in FAILED_STATUSES:  # a requeued or delivered
            lines.append(f"cause: {result['cause_text']}")  # one has no cause to fix
        if d.last_error:
            lines.append(f"last error: {d.last_error}")
        lines.append("attempts:" if result["attempts"] else "attempts: (none)")
        attempts: list[DeliveryAttempt] = result["attempts"]
        if result["earlier_attempts"]:
            lines.append(f"  (earlier attempts not shown: the newest {len(attempts)} follow)")
        for i, a in enumerate(attempts):
            if requeued_before(attempts, i):
                lines.append(f"  -- {REQUEUED}")
            lines.append(f"  {a.started_at:%Y-%m-%d %H:%M:%S} #{a.attempt} {a.outcome or '?'} "
                         f"{'retryable' if a.retryable else 'final'} http "
                         f"{a.http_status or '-'} code {a.discord_code or '-'} "
                         f"{a.duration_ms} ms" + (f": {a.error}" if a.error else ""))
        return "\n".join(lines)
    r: RetryResult = result
    out = f"{r.matched} failed deliveries taken: {r.requeued} requeued"
    if r.stale:
        out += (f", {r.stale} stale (the member's state no longer calls for them; skipped): "
                + ", ".join(delivery_ref(i) for i in r.stale_ids[:20]))
    if r.waiting:
        out += f", {r.waiting} log lines waiting for a log channel (/lifeline setup)"
    if r.more:
        out += "; more are left: run it again"
    return out
