"""Measure bytes per row (table + indexes) of Lifeline's schema and project a capacity plan.

    python -m tools.measure_sizes            # throwaway embedded PostgreSQL
    DATABASE_URL=... python -m tools.measure_sizes

Loads realistic rows through SQL (snowflake-sized ids, real enum values, typical text
lengths), VACUUM ANALYZEs, and reads pg_relation_size of each table and index. The figures
in docs/scaling.md come from this script.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.embedded_pg import start_embedded
from domain.persistence.database import asyncpg_url
from domain.persistence.migrate import upgrade

N = 200_000
LOAD = {
    "members": f"""INSERT INTO members (guild_id, user_id, state, version)
        SELECT 1000000000000000000 + (i % 1000), 100000000000000000 + i,
               'verified', 20 FROM generate_series(1, {N}) i""",
    "member_transitions": f"""INSERT INTO member_transitions (guild_id, user_id, version,
            operation, from_state, to_state, source, actor_id, reason, idempotency_key,
            correlation_id)
        SELECT 1000000000000000000 + (i % 1000), 100000000000000000 + i / 20, i % 20 + 1,
               'verify', 'verification_pending', 'verified', 'bot', NULL,
               'completed onboarding', 'gw:verify:1000000000000000000:1000000000:'
               || (1700000000000 + i), md5(i::text)
        FROM generate_series(1, {N}) i""",
    "dead_letters": f"""INSERT INTO dead_letters (guild_id, user_id, operation, from_state,
            to_state, observed_state, observed_version, reason_code, error_type,
            error_message, attempts, source, actor_id, idempotency_key, correlation_id,
            payload, signature, status)
        SELECT 1000000000000000000 + (i % 1000), 100000000000000000 + i, 'verify',
               'verification_pending', 'verified', 'verification_pending', 6,
               'retries_exhausted', 'WriteConflict',
               'another writer changed the member first (attempt 5: expected '
               || 'verification_pending at version 6)', 5, 'api', NULL, md5(i::text),
               md5((i + 1)::text),
               jsonb_build_object('guild_id', 1000000000000000000 + (i % 1000),
                 'user_id', 100000000000000000 + i, 'operation', 'verify', 'source', 'api',
                 'idempotency_key', md5(i::text), 'actor_id', NULL, 'reason', NULL,
                 'correlation_id', md5((i + 1)::text), 'expected_state', NULL,
                 'expected_version', NULL),
               'verify/retries_exhausted/WriteConflict',
               CAST(CASE WHEN i % 10 < 7 THEN 'resolved' ELSE 'open' END
                    AS dead_letter_status)
        FROM generate_series(1, {N}) i""",
    "outbox": f"""INSERT INTO outbox (guild_id, kind, channel_id, lane, payload, status,
            delivered_at, batch_id)
        SELECT 1000000000000000000 + (i % 1000), 'mirror', 1100000000000000000 + (i % 1000),
               'channel:' || (1100000000000000000 + (i % 1000)),
               jsonb_build_object('record', 'remediation', 'line',
                 '🛠️ <@900000000000000001> retried #' || i || ' (`verify` for '
                 || '<@100000000000000000>, verification_pending → verified): resolved'),
               'delivered', now(), i
        FROM generate_series(1, {N}) i""",
}


async def measure(url: str) -> dict[str, dict[str, float]]:
    await upgrade(url)
    engine = create_async_engine(asyncpg_url(url), isolation_level="AUTOCOMMIT")
    out: dict[str, dict[str, float]] = {}
    async with engine.connect() as conn:
        for table, sql in LOAD.items():
            await conn.execute(text(f"TRUNCATE {table} CASCADE"))
            await conn.execute(text(sql))
            await conn.execute(text(f"VACUUM ANALYZE {table}"))
            heap = (await conn.execute(text(
                f"SELECT pg_table_size('{table}')"))).scalar_one()
            indexes = (await conn.execute(text(
                f"SELECT pg_indexes_size('{table}')"))).scalar_one()
            per_index = {r.name: r.size / N for r in await conn.execute(text(
                """SELECT indexrelid::regclass::text AS name, pg_relation_size(indexrelid)
                          AS size FROM pg_index WHERE indrelid = CAST(:t AS regclass)"""),
                {"t": table})}
            out[table] = {"heap_bytes_per_row": heap / N, "index_bytes_per_row": indexes / N,
                          "total_bytes_per_row": (heap + indexes) / N, **{
                              f"index {k}": v for k, v in per_index.items()}}
            await conn.execute(text(f"TRUNCATE {table} CASCADE"))
        out["server"] = {"version": (await conn.execute(text("SHOW server_version_num"))
                                     ).scalar_one()}
    await engine.dispose()
    return out


def main() -> int:
    url = os.environ.get("DATABASE_URL")
    tmp = None
    server = None
    if not url:
        tmp = Path(tempfile.mkdtemp(prefix="llm-", dir="/tmp"))
        server = start_embedded(tmp / "pg", delete_on_exit=True)
        url = server.url
    try:
        result = asyncio.run(measure(url))
    finally:
        if server is not None:
            server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
