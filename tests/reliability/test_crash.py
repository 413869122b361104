"""SIGKILL of the bot in the middle of a 2,000-event burst and 1,000 mirror records."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import text

from domain.persistence.database import Database
from sandbox import Sandbox, SandboxConfig
from tests.bot.world import eventually
from tests.helpers import check_invariants
from tests.scale.procs import start_bot
from tests.wiring import ProcessServices

STARTED, COMPLETED = 8, 2
MEMBERS = 500  # x 4 events
RECORDS = 1000


async def _count(db: Database, sql: str) -> int:
    async with db.autocommit() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def test_sigkill_mid_burst_loses_nothing_and_doubles_nothing(
        migrated: str, clean_db: Database, tmp_path: Path) -> None:
    db = clean_db
    async with Sandbox(SandboxConfig()) as sandbox:
        guild = sandbox.create_guild("Crash", channels=("general", "mod-log"),
                                     roles={"Verified": 0})
        log_channel = sandbox.channel("mod-log", guild).id
        await ProcessServices(db).guilds.setup(
            guild.id, log_channel_id=log_channel, staff_role_ids=[],
            verified_role_id=guild.role_named("Verified").id, eligibility_role_id=None,
            mirror_level="remediation")
        async with db.transaction() as conn:
            await conn.execute(text(
                """INSERT INTO outbox (guild_id, kind, channel_id, lane, payload)
                   SELECT :g, 'mirror', :c, 'channel:' || CAST(:c AS bigint),
                          jsonb_build_object('record', 'remediation',
                                             'line', 'crash-record ' || lpad(i::text, 4, '0'))
                   FROM generate_series(1, :n) AS i"""),
                {"g": guild.id, "c": log_channel, "n": RECORDS})
        # Both bot processes run on one DATA_DIR: the second replays the ingest log of the
        # first (what it logged and had not applied when it was killed).
        common = {"OUTBOX_LOCK_SECONDS": "2", "OUTBOX_POLL_SECONDS": "0.1",
                  "DATA_DIR": str(tmp_path)}
        first = await start_bot("bot-1", migrated, sandbox.api_url, sandbox.gateway_url,
                                sandbox.token, 1, 0, **common)
        users = [sandbox.member_join(guild, None, f"c{i}").user.id for i in range(MEMBERS)]
        for flags in (STARTED, STARTED | COMPLETED):
            for user in users:
                sandbox.member_update(guild, user, flags=flags)
        for user in users:
            sandbox.member_update(guild, user, pending=False)

        async def midway() -> bool:
            ledger = await _count(db, "SELECT count(*) FROM member_transitions")
            delivered = await _count(db, "SELECT count(*) FROM outbox WHERE status = "
                                         "'delivered'")
            return ledger >= 100 and delivered >= 20
        await eventually(midway, timeout=60, what="the burst under way")
        first.kill()
        await first.process.wait()
        at_kill = (await _count(db, "SELECT count(*) FROM member_transitions"),
                   await _count(db, "SELECT count(*) FROM outbox WHERE status = 'delivered'"))
        t0 = time.monotonic()

        second = await start_bot("bot-2", migrated, sandbox.api_url, sandbox.gateway_url,
                                 sandbox.token, 1, 0, **common)
        try:
            async def converged() -> bool:
                done = await _count(db, "SELECT count(*) FROM members WHERE state = "
                                        "'rules_accepted'")
                pending = await _count(db, "SELECT count(*) FROM outbox WHERE status <> "
                                           "'delivered'")
                return done == MEMBERS and pending == 0
            await eventually(converged, timeout=180, what="every event and record through")
            # The killed bot's logged, unapplied events were applied from its ingest log.
            replayed = [line for line in second.output if "applied now" in line]
            assert replayed and "ingest log:" in replayed[0], second.output[-20:]
        finally:
            assert await second.terminate() == 0
        recovery = time.monotonic() - t0

    stats = await check_invariants(db)
    assert await _count(db, "SELECT count(*) FROM dead_letters") == 0
    lines = [line for m in sandbox.messages(log_channel) for line in m.lines()]
    seen = Counter(re.findall(r"crash-record (\d{4})", "\n".join(lines)))
    assert len(seen) == RECORDS and set(seen.values()) == {1}, "each record exactly once"
    assert [int(n) for n in re.findall(r"crash-record (\d{4})", "\n".join(lines))] == \
        list(range(1, RECORDS + 1)), "in order"
    print("\n" + json.dumps({
        "fault": "SIGKILL of the bot mid-burst", "member_events": MEMBERS * 4,
        "mirror_records": RECORDS, "at_kill": {"ledger_rows": at_kill[0],
                                               "delivered": at_kill[1]},
        "after": stats, "messages": len(sandbox.messages(log_channel)),
        "duplicates_prevented_by_nonce": len(sandbox.duplicates_prevented),
        "lost": 0, "duplicated": 0, "recovery_seconds": round(recovery, 1)}))
