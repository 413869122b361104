"""`python -m bot dlq retry-all`: preview, confirmation, progress and the summary."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from bot.container import Container
from domain.entries import BulkRetryResult
from domain.lifecycle import Source


def _filters(a: argparse.Namespace) -> dict[str, Any]:
    return {"status": a.status, "operation": a.operation, "signature": a.signature,
            "entry_source": a.source, "user_id": a.user}


def _ask(question: str) -> bool:
    print(question, end=" ", file=sys.stderr, flush=True)
    try:
        return input().strip().lower() in ("y", "yes")
    except EOFError:  # nobody to answer: no
        return False


async def retry_all(c: Container, a: argparse.Namespace) -> BulkRetryResult | str:
    """The preview (how many match) first, on stderr; with --dry-run that is all. Then,
    confirmed (--yes, or `y` typed), the replays, their progress on stderr."""
    preview = await c.remediation.retry_all(a.guild, a.actor, Source.CLI, dry_run=True,
                                            **_filters(a))
    if a.dry_run:
        return preview
    if preview.matched == 0:
        return "no unresolved entries match; nothing retried"
    print(f"{preview.matched} unresolved entries match", file=sys.stderr)
    if not a.yes and not await asyncio.to_thread(_ask, "Retry them? [y/N]"):
        return "nothing retried"

    def progress(done: int, total: int, resolved: int) -> None:
        if not a.json and (done == total or done % 100 == 0):
            print(f"  {done}/{total} retried, {resolved} resolved", file=sys.stderr)

    return await c.remediation.retry_all(a.guild, a.actor, Source.CLI, progress,
                                         force=a.force, **_filters(a))


def render(result: BulkRetryResult | str) -> str:
    if isinstance(result, str):
        return result
    if result.dry_run:
        return f"{result.matched} unresolved entries match (dry run: nothing retried)"
    out = (f"{result.matched} matched: {result.resolved} resolved, {result.failed} failed, "
           f"{result.skipped} skipped (being retried or changed meanwhile)")
    if result.stale:
        out += (f", {result.stale} stale (their member changed since; not replayed: "
                "--force replays them)")
    if result.remaining:
        out += f"\n{result.remaining} more match: run it again"
    return out
