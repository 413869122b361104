"""`python -m bot migrate`: bring the schema to the newest revision."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from bot.container import open_container
from bot.settings import Settings


def register(sub: Any) -> None:
    parser = sub.add_parser("migrate", help="apply database migrations (alembic upgrade head)")
    parser.set_defaults(handler=run, quiet_logs=True)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        revision = asyncio.run(_migrate(settings))
    except Exception as exc:
        print(f"lifeline: migration failed: {exc}", file=sys.stderr)
        return 1
    where = "embedded PostgreSQL in " + str(settings.data_dir / "pg") \
        if settings.database_url is None else "DATABASE_URL"
    print(f"database schema is at revision {revision} ({where})")
    return 0


async def _migrate(settings: Settings) -> str:
    async with open_container(settings) as container:
        return await container.services.stores.ops.schema_revision()
