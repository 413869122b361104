"""Shared test helpers: invariant checks and command builders."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from domain.commands import TransitionCommand
from domain.lifecycle import TRANSITIONS, Operation, Source, State, shortest_path
from domain.persistence.database import Database
from domain.persistence.migrate import MIGRATION_LOCK_KEY, upgrade

GUILD = 111_111_111_111_111_111
OTHER_GUILD = 222_222_222_222_222_222
STAFF = 900_000_000_000_000_001
_ids = itertools.count(10_000_000_000_000_000)


def next_user() -> int:
    return next(_ids)


def cmd(op: Operation, user: int, guild: int = GUILD, source: Source = Source.BOT,
        key: str | None = None, **kw: object) -> TransitionCommand:
    return TransitionCommand(guild_id=guild, user_id=user, operation=op, source=source,
                             idempotency_key=key or uuid.uuid4().hex, **kw)  # type: ignore[arg-type]


def path_to(target: State) -> list[Operation]:
    """The shortest operation path from a new member to `target` (domain.lifecycle)."""
    return [step.operation for step in shortest_path(target)]


async def check_invariants(db: Database) -> dict[str, int]:
    """version == ledger rows, versions exactly 1..n, every ledger step allowed by the table."""
    async with db.transaction() as conn:
        # One snapshot for every read, so writers in flight cannot skew the comparison.
        await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        bad_count = (await conn.execute(text(
            """SELECT count(*) FROM members m
               WHERE m.version <> (SELECT count(*) FROM member_transitions t
                                   WHERE t.guild_id = m.guild_id AND t.user_id = m.user_id)
                  OR m.version <> (SELECT coalesce(max(version), 0) FROM member_transitions t
                                   WHERE t.guild_id = m.guild_id AND t.user_id = m.user_id)"""
        ))).scalar_one()
        orphan = (await conn.execute(text(
            """SELECT count(*) FROM member_transitions t WHERE NOT EXISTS (
                 SELECT 1 FROM members m WHERE m.guild_id = t.guild_id
                 AND m.user_id = t.user_id)"""))).scalar_one()
        rows = (await conn.execute(text(
            """SELECT guild_id, user_id, version, operation, from_state, to_state
               FROM member_transitions ORDER BY guild_id, user_id, version"""))).all()
        last_state = (await conn.execute(text(
            "SELECT guild_id, user_id, state FROM members"))).all()
    assert bad_count == 0, f"{bad_count} members with version != ledger rows"
    assert orphan == 0
    prev: dict[tuple[int, int], tuple[int, str | None]] = {}
    for r in rows:
        key = (r.guild_id, r.user_id)
        version, state = prev.get(key, (0, None))
        assert r.version == version + 1, f"gap in versions for {key}"
        assert r.from_state == state, f"ledger chain broken for {key} at v{r.version}"
        expected_to = TRANSITIONS.get((Operation(r.operation),
                                       State(r.from_state) if r.from_state else None))
        assert expected_to is not None and expected_to.value == r.to_state, \
            f"invalid transition {r.operation} from {r.from_state} recorded for {key}"
        prev[key] = (r.version, r.to_state)
    for m in last_state:
        assert prev[(m.guild_id, m.user_id)][1] == m.state
    return {"members": len(last_state), "ledger_rows": len(rows)}


async def count(db: Database, table: str, where: str = "TRUE", **params: object) -> int:
    async with db.autocommit() as conn:
        return int((await conn.execute(
            text(f"SELECT count(*) FROM {table} WHERE {where}"), params)).scalar_one())


async def drive(services: Any, user: int, target: State, guild: int = GUILD) -> None:
    """Walk a member from no record to `target` through `services.transitions` (the
    table's shortest path), as the gateway and the web app would."""
    for op in path_to(target):
        await services.transitions.apply(cmd(op, user, guild))


async def setup_log_channel(db: Database, guild: int = GUILD) -> None:
    """Guild settings with a log channel (mirror level dead_letters), written directly."""
    async with db.transaction() as conn:
        await conn.execute(text(
            "INSERT INTO guild_settings (guild_id, log_channel_id, mirror_level) "
            "VALUES (:g, 555, 'dead_letters')"), {"g": guild})


def postmasters(pgdata: Path) -> list[psutil.Process]:
    """The PostgreSQL server processes running on `pgdata`."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] == "postgres" and str(pgdata) in " ".join(
                    proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


@dataclass(frozen=True)
class ConcurrentUpgrades:
    version: str  # the schema's alembic revision afterwards
    tables: int  # tables in the public schema afterwards
    advisory_locks_left: int  # advisory locks still held on the server afterwards


async def upgrades_started_while_the_lock_is_held(direct_url: str, upgrade_url: str,
                                                  upgrades: int = 4) -> ConcurrentUpgrades:
    """Another process is mid-upgrade (it holds the migration lock, taken on `direct_url`:
    a session lock taken through a pooler would stay on whichever server connection ran
    it) while `upgrades` more start through `upgrade_url`. Waits until all of them wait
    for the lock (a real contest), releases it, and says what the schema ended as."""
    engine = create_async_engine(direct_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as holder, engine.connect() as probe:
            await holder.execute(text("SELECT pg_advisory_lock(:k)"),
                                 {"k": MIGRATION_LOCK_KEY})
            started = [asyncio.create_task(upgrade(upgrade_url, statement_cache_size=0))
                       for _ in range(upgrades)]
            deadline = time.monotonic() + 20
            while True:
                waiting = (await probe.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"))).scalar_one()
                if waiting == upgrades:
                    break
                assert time.monotonic() < deadline, f"{waiting} upgrades waiting, not {upgrades}"
                await asyncio.sleep(0.02)
            assert not any(task.done() for task in started)
            await holder.execute(text("SELECT pg_advisory_unlock(:k)"),
                                 {"k": MIGRATION_LOCK_KEY})
            await asyncio.wait_for(asyncio.gather(*started), timeout=60)
            version = (await probe.execute(text(
                "SELECT version_num FROM alembic_version"))).scalar_one()
            tables = (await probe.execute(text(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"))).scalar_one()
            left = (await probe.execute(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"))).scalar_one()
    finally:
        await engine.dispose()
    return ConcurrentUpgrades(str(version), int(tables), int(left))
