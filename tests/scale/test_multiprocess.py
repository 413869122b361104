"""Two bot processes (shards 0 and 1 of 2) and two API processes on one PostgreSQL.

A 2,000-event burst of member events, concurrent API writes and staff remediation; then
one bot process is SIGKILLed while it holds outbox claims. Every figure is printed (-s).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from domain.commands import TransitionCommand
from domain.errors import TransitionDeadLettered
from domain.lifecycle import Operation, Source
from domain.persistence.database import Database
from sandbox import Guild, Sandbox, SandboxConfig
from tests.bot.world import eventually
from tests.helpers import check_invariants
from tests.scale.procs import API_TOKEN, Proc, start_api, start_bot
from tests.wiring import ProcessServices

STARTED, COMPLETED = 8, 2
MEMBERS_PER_GUILD = 250  # x 2 guilds x 4 events = 2,000 events
API_MEMBERS_PER_GUILD = 50
STAFF = 900_000_000_000_000_001


async def _state(db: Database, guild: int, user: int) -> str | None:
    async with db.autocommit() as conn:
        return (await conn.execute(text(
            "SELECT state FROM members WHERE guild_id = :g AND user_id = :u"),
            {"g": guild, "u": user})).scalar()


async def _count(db: Database, sql: str, **params: Any) -> int:
    async with db.autocommit() as conn:
        return int((await conn.execute(text(sql), params)).scalar_one())


async def _api_verify(client: httpx.AsyncClient, base: str, guild: int, user: int,
                      outcomes: Counter[str]) -> None:
    """The web app: request verification once the member may, then verify."""
    url = f"{base}/api/v1/guilds/{guild}/members/{user}/transitions"
    for operation in ("request_verification", "verify"):
        for _ in range(600):
            resp = await client.post(url, json={"operation": operation,
                                                "idempotency_key": f"web-{operation}-{user}"})
            outcomes[f"{operation}:{resp.status_code}"] += 1
            if resp.status_code == 200:
                break
            assert resp.status_code in (422, 503), resp.text  # not yet allowed / dead letter
            await asyncio.sleep(0.05)  # the member is still onboarding; the web app waits
        else:
            raise AssertionError(f"{operation} for {user} never became possible")


def _lines(sandbox: Sandbox, channel: int) -> list[str]:
    return [line for m in sandbox.messages(channel) for line in m.lines()]


async def test_two_shards_two_apis_one_database(migrated: str, clean_db: Database) -> None:
    db = clean_db
    guilds_service = ProcessServices(db).guilds
    async with Sandbox(SandboxConfig(shard_count=2)) as sandbox:
        guilds: list[Guild] = [sandbox.create_guild(f"Shard {s}", shard=s,
                                                    channels=("general", "mod-log"),
                                                    roles={"Verified": 0})
                               for s in (0, 1)]
        logs = {g.id: sandbox.channel("mod-log", g).id for g in guilds}
        for g in guilds:
            await guilds_service.setup(g.id, log_channel_id=logs[g.id], staff_role_ids=[],
                                       verified_role_id=g.role_named("Verified").id,
                                       eligibility_role_id=None, mirror_level="dead_letters")
        common = dict(OUTBOX_LOCK_SECONDS="3", OUTBOX_POLL_SECONDS="0.1")
        bots: dict[int, Proc] = {}
        apis: list[tuple[Proc, str]] = []
        try:
            bots = dict(zip((0, 1), await asyncio.gather(*(
                start_bot(f"bot-shard-{s}", migrated, sandbox.api_url, sandbox.gateway_url,
                          sandbox.token, 2, s, **common) for s in (0, 1))), strict=True))
            apis = list(await asyncio.gather(start_api("api-1", migrated),
                                             start_api("api-2", migrated)))
            await _burst_and_check(sandbox, db, guilds, logs, apis)
            await _kill_one_bot_and_recover(sandbox, db, guilds, logs, bots, apis, migrated,
                                            common)
        finally:
            for proc in [*bots.values(), *(p for p, _ in apis)]:
                if proc.process.returncode is None:
                    proc.kill()
                    await proc.process.wait()


async def _burst_and_check(sandbox: Sandbox, db: Database, guilds: list[Guild],
                           logs: dict[int, int], apis: list[tuple[Proc, str]]) -> None:
    t0 = time.monotonic()
    members = {g.id: [sandbox.member_join(g, None, f"m{g.id % 97}-{i}").user.id
                      for i in range(MEMBERS_PER_GUILD)] for g in guilds}
    strays = {g.id: [sandbox.member_join(g, None, f"stray-{i}").user.id for i in range(10)]
              for g in guilds}
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    outcomes: Counter[str] = Counter()
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        web_app = [asyncio.create_task(_api_verify(
            client, apis[i % 2][1], g.id, user, outcomes))
            for g in guilds for i, user in enumerate(members[g.id][:API_MEMBERS_PER_GUILD])]
        for flags in (STARTED, STARTED | COMPLETED):
            for g in guilds:
                for user in members[g.id]:
                    sandbox.member_update(g, user, flags=flags)
        for g in guilds:
            for user in members[g.id]:
                sandbox.member_update(g, user, pending=False)
            for user in strays[g.id]:
                # screening passed before any onboarding: nothing yet, they stay joined
                sandbox.member_update(g, user, pending=False)
        await asyncio.gather(*web_app)
        events = 2 * (MEMBERS_PER_GUILD * 4 + 10 * 2)

        async def settled() -> bool:
            done = await _count(db, "SELECT count(*) FROM members WHERE state IN "
                                    "('rules_accepted', 'verified')")
            waiting = await _count(db, "SELECT count(*) FROM members WHERE state = 'joined' "
                                       "AND user_id = ANY(:u)",
                                   u=[u for g in guilds for u in strays[g.id]])
            return done == 2 * MEMBERS_PER_GUILD and waiting == 20
        await eventually(settled, timeout=120, what="every event applied")
        burst_seconds = time.monotonic() - t0
        assert await _count(db, "SELECT count(*) FROM dead_letters") == 0  # none from load

        # Work for staff: a web-app write per stray that lost every race (a writer of its
        # own, through its fault seam), kept as a dead letter.
        writer = ProcessServices(db)
        writer.faults.lose_cas()
        for g in guilds:
            for user in strays[g.id]:
                with pytest.raises(TransitionDeadLettered):
                    await writer.transitions.apply(TransitionCommand(
                        guild_id=g.id, user_id=user, operation=Operation.START_ONBOARDING,
                        source=Source.API, idempotency_key=f"web-{user}"))

        # Staff remediation through both API processes: resolve every stray's dead letter.
        async with db.autocommit() as conn:
            entries = (await conn.execute(text(
                "SELECT id, guild_id FROM dead_letters ORDER BY id"))).all()
        for i, entry in enumerate(entries):
            resp = await client.post(
                f"{apis[i % 2][1]}/api/v1/guilds/{entry.guild_id}/dead-letters/{entry.id}/"
                "resolve", json={"actor_id": str(STAFF), "note": "the web app asked again"})
            assert resp.status_code == 200, resp.text
        # Every dead letter is visible from every process.
        for _, base in apis:
            for g in guilds:
                resp = await client.get(f"{base}/api/v1/guilds/{g.id}/dead-letters",
                                        params={"status": "resolved", "limit": 100})
                assert resp.status_code == 200
                ids = {int(item["id"]) for item in resp.json()["items"]}
                assert ids == {e.id for e in entries if e.guild_id == g.id}

    for g in guilds:
        for user in members[g.id][:API_MEMBERS_PER_GUILD]:
            assert await _state(db, g.id, user) == "verified"
        for user in members[g.id][API_MEMBERS_PER_GUILD:]:
            assert await _state(db, g.id, user) == "rules_accepted"
    stats = await check_invariants(db)
    # Every mirror record delivered exactly once, in each guild's channel.
    await eventually(lambda: _mirror_done(db), timeout=120, what="the mirror delivered")
    for g in guilds:
        lines = _lines(sandbox, logs[g.id])
        ids = Counter(re.findall(r"#(\d+)", "\n".join(lines)))
        assert len(lines) == await _count(db, "SELECT count(*) FROM outbox WHERE kind = "
                                              "'mirror' AND guild_id = :g", g=g.id)
        assert all(n == 2 for n in ids.values()), ids  # created + resolved, once each
    # Role grants are PUTs, idempotent in Discord: what counts is that every verified member
    # got the role (a resend after a takeover would be harmless).
    granted = {(c.guild_id, c.user_id) for c in sandbox.role_changes
               if c.action == "add" and c.source == "rest"}
    assert granted == {(g.id, u) for g in guilds for u in members[g.id][:API_MEMBERS_PER_GUILD]}
    print(f"\nburst: {events} gateway events + {sum(outcomes.values())} API calls "
          f"({dict(outcomes)}) settled in {burst_seconds:.1f}s; {stats}; "
          f"mirror messages {sum(len(sandbox.messages(c)) for c in logs.values())}, "
          f"nonce duplicates prevented {len(sandbox.duplicates_prevented)}")


async def _mirror_done(db: Database) -> bool:
    return await _count(db, "SELECT count(*) FROM outbox WHERE status <> 'delivered'") == 0


async def _kill_one_bot_and_recover(sandbox: Sandbox, db: Database, guilds: list[Guild],
                                    logs: dict[int, int], bots: dict[int, Proc],
                                    apis: list[tuple[Proc, str]], migrated: str,
                                    common: dict[str, str]) -> None:
    # Deliveries to guild 0's log channel hang: whichever process claims the next record
    # holds the claim when it is killed.
    sandbox.inject_fault("POST", f"/channels/{logs[guilds[0].id]}/messages", "hang", count=1,
                         hang_seconds=6)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {API_TOKEN}"}) as client:
        entry = (await client.get(f"{apis[0][1]}/api/v1/guilds/{guilds[0].id}/dead-letters",
                                  params={"limit": 1, "status": "resolved"})).json()["items"][0]
        resp = await client.post(f"{apis[0][1]}/api/v1/guilds/{guilds[0].id}/dead-letters/"
                                 f"{entry['id']}/reopen", json={"actor_id": str(STAFF)})
        assert resp.status_code == 200, resp.text

    async def claimed_by() -> str | None:
        async with db.autocommit() as conn:
            return (await conn.execute(text(
                "SELECT locked_by FROM outbox WHERE status = 'delivering'"))).scalar()
    owner = await eventually(claimed_by, what="a claimed mirror row")
    victim_shard = next(s for s, p in bots.items() if f":{p.pid}:" in owner)
    survivor_shard = 1 - victim_shard
    bots[victim_shard].kill()
    await bots[victim_shard].process.wait()
    t_kill = time.monotonic()

    # The other shard is unaffected.
    user = sandbox.member_join(guilds[survivor_shard], None, "after-kill").user.id
    await eventually(lambda: _is(db, guilds[survivor_shard].id, user, "joined"),
                     what="the surviving shard handling a join")
    # The killed process's claim is taken over after its lock expires; one line, once.
    await eventually(lambda: _mirror_done(db), timeout=60, what="the claim taken over")
    takeover = time.monotonic() - t_kill
    reopened = [line for line in _lines(sandbox, logs[guilds[0].id])
                if f"reopened #{entry['id']}" in line]
    assert len(reopened) == 1, reopened

    # The killed shard's events resume once it restarts.
    bots[victim_shard] = await start_bot(f"bot-shard-{victim_shard}-again", migrated,
                                         sandbox.api_url, sandbox.gateway_url, sandbox.token,
                                         2, victim_shard, **common)
    user = sandbox.member_join(guilds[victim_shard], None, "after-restart").user.id
    await eventually(lambda: _is(db, guilds[victim_shard].id, user, "joined"),
                     what="the restarted shard handling a join")
    await check_invariants(db)
    print(f"SIGKILL of shard {victim_shard}: claim taken over after {takeover:.1f}s "
          f"(lock 3s), reopened line posted once, shard {survivor_shard} unaffected")


async def _is(db: Database, guild: int, user: int, state: str) -> bool:
    return await _state(db, guild, user) == state
