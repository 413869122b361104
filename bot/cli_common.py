"""What the ops CLI's commands share: argument types, running against a container with the
exit codes every command keeps (1 refused, 4 database unavailable), and output helpers."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from typing import Any

from bot.container import Container, open_container
from bot.ids import discord_ids_as_strings
from bot.settings import Settings
from domain.commands import MAX_SNOWFLAKE
from domain.errors import DatabaseUnavailable, DomainError
from domain.persistence.database import is_unavailable

# An exception a command answers in its own way: it prints and returns the exit code.
Refusal = Callable[[Exception], int]


def snowflake(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) <= MAX_SNOWFLAKE:
        raise argparse.ArgumentTypeError(f"{value!r} is not a Discord id (1..{MAX_SNOWFLAKE})")
    return int(value)


def run_in_container(settings: Settings, act: Callable[[Container], Awaitable[Any]], *,
                     refusals: Mapping[type[Exception], Refusal] | None = None
                     ) -> tuple[Any, int | None]:
    """(what `act` answered, None), or (None, the exit code) once the one-line reason is on
    stderr: 4 the database is unavailable (nothing was done), 1 refused or failed."""
    try:
        return asyncio.run(_with_container(settings, act)), None
    except Exception as exc:
        for kind, refuse in (refusals or {}).items():
            if isinstance(exc, kind):
                return None, refuse(exc)
        return None, exit_code_of(exc)


def exit_code_of(exc: Exception) -> int:
    if isinstance(exc, DatabaseUnavailable):
        print(f"lifeline: the database is unavailable ({exc}); nothing was done",
              file=sys.stderr)
        return 4
    if isinstance(exc, DomainError):
        print(f"lifeline: {exc}", file=sys.stderr)
        return 1
    if is_unavailable(exc):
        print(f"lifeline: the database is unavailable ({type(exc).__name__}); nothing was "
              "done", file=sys.stderr)
        return 4
    print(f"lifeline: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1


async def _with_container(settings: Settings, act: Callable[[Container], Awaitable[Any]]
                          ) -> Any:
    async with open_container(settings, application_name="lifeline-cli") as container:
        return await act(container)


def jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def print_json(data: Any) -> None:
    """JSON with every Discord id as a string."""
    print(json.dumps(discord_ids_as_strings(data), indent=2, default=str))


def age(moment: datetime) -> str:
    seconds = int((datetime.now(UTC) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    cells = [[str(r.get(c) if r.get(c) is not None else "-") for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
