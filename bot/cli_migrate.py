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
    parser.add_argument("--new-identity", action="store_true",
                        help="also give the database a new identity for message nonces "
                             "(after restoring a backup)")
    parser.set_defaults(handler=run, quiet_logs=True)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        revision, identity = asyncio.run(_migrate(settings, args.new_identity))
    except Exception as exc:
        print(f"lifeline: migration failed: {exc}", file=sys.stderr)
        return 1
    where = "embedded PostgreSQL in " + str(settings.data_dir / "pg") \
        if settings.database_url is None else "DATABASE_URL"
    print(f"database schema is at revision {revision} ({where})")
    if identity is not None:
        print(f"new installation identity {identity}: message nonces from now on are new")
    return 0


async def _migrate(settings: Settings, new_identity: bool) -> tuple[str, str | None]:
    async with open_container(settings) as container:
        ops = container.services.stores.ops
        identity = await ops.new_installation_identity() if new_identity else None
        return await ops.schema_revision(), identity
