"""What a raid left behind (bench/raid.py): each member's ledger rows against the events
the sandbox sent, the state Discord shows against the stored one, dead letters, and the
wait until every expected row is committed."""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.common import Context, percentile
from domain.lifecycle import ONBOARDING_PATH, State
from domain.member_sync import MemberFlags, catch_up

RANK = {state.value: i for i, state in enumerate(ONBOARDING_PATH)}
# The state each of a member's four events implies, in order.
IMPLIED = (State.JOINED, State.ONBOARDING_IN_PROGRESS, State.ONBOARDING_COMPLETED,
           State.RULES_ACCEPTED)
EVENTS = ("join", "started onboarding", "completed onboarding", "screening passed")


# -- reading the outcome ---------------------------------------------------------------------

async def ledger(ctx: Context, guild_ids: list[int]) -> dict[tuple[int, int], list[Any]]:
    """Per member its ledger rows, in version order: (created_at epoch, to_state, operation,
    source)."""
    conn = await ctx.connect()
    try:
        rows = await conn.fetch(
            "SELECT guild_id, user_id, extract(epoch FROM created_at)::float8 AS at,"
            " to_state::text AS state, operation::text AS op, source::text AS source"
            " FROM member_transitions WHERE guild_id = ANY($1::bigint[])"
            " ORDER BY guild_id, user_id, version", guild_ids)
    finally:
        await conn.close()
    found: dict[tuple[int, int], list[Any]] = {}
    for r in rows:
        found.setdefault((r["guild_id"], r["user_id"]), []).append(
            (r["at"], r["state"], r["op"], r["source"]))
    return found


async def stored_states(ctx: Context, guild_ids: list[int]) -> dict[tuple[int, int], str]:
    conn = await ctx.connect()
    try:
        rows = await conn.fetch("SELECT guild_id, user_id, state::text AS state FROM members"
                                " WHERE guild_id = ANY($1::bigint[])", guild_ids)
    finally:
        await conn.close()
    return {(r["guild_id"], r["user_id"]): r["state"] for r in rows}


async def dead_letters(ctx: Context, guild_ids: list[int]) -> Counter[str]:
    conn = await ctx.connect()
    try:
        rows = await conn.fetch(
            "SELECT reason_code::text AS reason, source::text AS source,"
            " operation::text AS op, count(*) AS n FROM dead_letters"
            " WHERE guild_id = ANY($1::bigint[]) GROUP BY 1, 2, 3", guild_ids)
    finally:
        await conn.close()
    return Counter({f"{r['reason']} ({r['source']} {r['op']})": int(r["n"]) for r in rows})


async def drain(ctx: Context, members: list[list[Any]], cap: float) -> float:
    """Wait until every member's last emitted event is committed (polled every 0.5 s with
    one count), at most `cap` seconds; returns the seconds waited."""
    guild_ids = sorted({m[0] for m in members})
    users = [m[1] for m in members]
    conn = await ctx.connect()
    started = time.monotonic()
    try:
        while time.monotonic() - started < cap:
            done = await conn.fetchval(
                "SELECT count(*) FROM members WHERE guild_id = ANY($1::bigint[])"
                " AND user_id = ANY($2::bigint[]) AND state NOT IN"
                " ('joined', 'onboarding_in_progress', 'onboarding_completed', 'role_eligible')",
                guild_ids, users)
            if done >= len(members):
                break
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    return time.monotonic() - started


@dataclass
class Analysis:
    """What one raid (or step) gives: per-event latencies, losses, state checks."""

    latencies: list[float]
    lost: Counter[str]
    events: int
    emits: list[float]
    commits: list[float]  # of the committed events
    last_emit: float
    last_commit: float
    bot_rows: int
    collapsed: int  # members whose start_onboarding was folded into complete_onboarding
    not_in_state: int
    without_record: int
    api_rows: int

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    def drain_seconds(self) -> float | None:
        if self.lost_total:
            return None
        return max(0.0, self.last_commit - self.last_emit)

    def summary(self) -> dict[str, Any]:
        lat = self.latencies
        return {"events": self.events, "lost": dict(self.lost), "lost_total": self.lost_total,
                "latency_p50_s": round(percentile(lat, 50), 3),
                "latency_p99_s": round(percentile(lat, 99), 3),
                "latency_max_s": round(max(lat, default=0.0), 3),
                "drain_s": None if self.drain_seconds() is None
                else round(self.drain_seconds() or 0.0, 2),
                "bot_rows": self.bot_rows, "api_rows": self.api_rows,
                "collapsed_start_onboarding": self.collapsed,
                "not_in_state": self.not_in_state, "without_record": self.without_record}

    def backlog(self, start: float, end: float) -> list[tuple[float, int]]:
        """(seconds since start, events emitted and not committed) once a second."""
        emits, commits = sorted(self.emits), sorted(self.commits)
        series = []
        for k in range(math.ceil(end - start) + 1):
            at = start + k
            series.append((float(k), bisect.bisect_right(emits, at)
                           - bisect.bisect_right(commits, at)))
        return series


def final_flags(member: list[Any]) -> MemberFlags:
    """What Discord shows of a raid member after the events that were emitted."""
    emitted = [t is not None for t in member[3:6]]
    return MemberFlags(started_onboarding=emitted[0], completed_onboarding=emitted[1],
                       pending=not emitted[2])


def analyse(members: list[list[Any]], rows: dict[tuple[int, int], list[Any]],
            states: dict[tuple[int, int], str]) -> Analysis:
    latencies: list[float] = []
    lost: Counter[str] = Counter()
    emits: list[float] = []
    commits: list[float] = []
    bot_rows = api_rows = collapsed = not_in_state = without_record = 0
    for member in members:
        key = (member[0], member[1])
        ledger_rows = rows.get(key, [])
        bot_rows += sum(r[3] == "bot" for r in ledger_rows)
        api_rows += sum(r[3] == "api" for r in ledger_rows)
        ops = {r[2] for r in ledger_rows}
        collapsed += "complete_onboarding" in ops and "start_onboarding" not in ops
        for k, implied in enumerate(IMPLIED):
            emitted = member[2 + k]
            if emitted is None:
                continue
            emits.append(emitted)
            rank = RANK[implied.value]
            commit = next((r[0] for r in ledger_rows if RANK.get(r[1], -1) >= rank), None)
            if commit is None:
                lost[EVENTS[k]] += 1
                continue
            commits.append(max(commit, emitted))
            latencies.append(commit - emitted)
        stored = states.get(key)
        if stored is None:
            without_record += 1
        elif catch_up(State(stored), final_flags(member), eligibility_role_configured=False):
            not_in_state += 1
    return Analysis(latencies, lost, len(emits), emits, commits, max(emits, default=0.0),
                    max(commits, default=0.0), bot_rows, collapsed, not_in_state,
                    without_record, api_rows)


async def outcome(ctx: Context, members: list[list[Any]]) -> Analysis:
    guild_ids = sorted({m[0] for m in members})
    return analyse(members, await ledger(ctx, guild_ids), await stored_states(ctx, guild_ids))
