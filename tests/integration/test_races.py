"""Races on real separate connections and real OS processes; invariants checked after each.

Each in-process writer has its own TransitionService, as separate processes would: one
service lets writers of a member take turns (tests/integration/test_single_flight.py), so
only separate services race on the compare-and-set.

Numbers (attempts, conflicts, dead letters) are printed with -s for the closing note.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from domain.errors import TransitionDeadLettered
from domain.lifecycle import Operation, State, TransitionNotAllowed
from domain.transitions import TransitionService
from tests.helpers import GUILD, check_invariants, cmd, count, next_user, path_to
from tests.wiring import ProcessServices

ROOT = Path(__file__).resolve().parents[2]


async def _drive(services: ProcessServices, user: int, target: State) -> None:
    for op in path_to(target):
        await services.transitions.apply(cmd(op, user))


def _separate(services: ProcessServices) -> TransitionService:
    """A second writer process in miniature: its own service on the same database."""
    return services.another_process().transitions


async def _attempt(service: TransitionService, op: Operation, user: int
                   ) -> tuple[str, int | None]:
    try:
        result = await service.apply(cmd(op, user))
        if result.already_there:  # another writer got it there first
            return "already_there", None
        return "applied", result.transition_id
    except TransitionNotAllowed:
        return "not_allowed", None
    except TransitionDeadLettered as exc:
        return f"dead_lettered:{exc.reason_code}", None


async def test_two_writers_verify_and_leave_at_once_exactly_one_wins_per_step(
        services: ProcessServices) -> None:
    # Both writers read `verification_pending`; verify and leave race on the same version.
    rounds = 30
    outcomes: Counter[str] = Counter()
    for _ in range(rounds):
        user = next_user()
        await _drive(services, user, State.VERIFICATION_PENDING)
        results = await asyncio.gather(_attempt(_separate(services), Operation.VERIFY, user),
                                       _attempt(_separate(services), Operation.LEAVE, user))
        outcomes.update(r[0] for r in results)
        member = await services.transitions.get_member(GUILD, user)
        assert member is not None
        applied = [r for r in results if r[0] == "applied"]
        # leave is allowed from verified too, so either both apply (verify then leave) or
        # leave wins and verify ends not applicable: never a lost update.
        assert member.state == State.LEFT_GUILD
        assert member.version == 5 + len(applied)
    await check_invariants(services.db)
    dead = await count(services.db, "dead_letters")
    assert dead == sum(v for k, v in outcomes.items() if k.startswith("dead_lettered"))
    print(f"\n2 writers x {rounds} rounds: {dict(outcomes)}, "
          f"conflicts={sum(services.metrics.conflicts.values())}, dead letters={dead}")


async def test_twenty_concurrent_writers_on_one_member_lose_no_update(
        services: ProcessServices) -> None:
    user = next_user()
    await _drive(services, user, State.VERIFICATION_PENDING)
    base_version = 5

    async def writer(i: int) -> list[tuple[str, int | None]]:
        op = Operation.VERIFY if i % 2 == 0 else Operation.REVERIFY
        service = _separate(services)
        return [await _attempt(service, op, user) for _ in range(10)]

    results = [r for rs in await asyncio.gather(*(writer(i) for i in range(20))) for r in rs]
    outcomes = Counter(r[0] for r in results)
    applied_ids = {r[1] for r in results if r[0] == "applied"}
    member = await services.transitions.get_member(GUILD, user)
    assert member is not None
    assert len(applied_ids) == outcomes["applied"]  # no two writers got the same row
    assert member.version == base_version + outcomes["applied"]
    stats = await check_invariants(services.db)
    dead = await count(services.db, "dead_letters")
    assert dead == sum(v for k, v in outcomes.items() if k.startswith("dead_lettered"))
    assert outcomes["applied"] > 0
    assert sum(services.metrics.conflicts.values()) > 0  # the compare-and-set was contested
    print(f"\n20 writers x 10 ops on one member: {dict(outcomes)}, "
          f"conflicts={sum(services.metrics.conflicts.values())}, "
          f"retries={sum(services.metrics.retries.values())}, dead letters={dead}, {stats}")


async def test_four_processes_two_hundred_transitions_over_ten_members(
        services: ProcessServices, migrated: str) -> None:
    first_user = next_user()
    for _ in range(20):
        next_user()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration.race_worker", migrated, str(seed), "200",
            str(GUILD), str(first_user), "10", cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for seed in range(4)
    ]
    summaries = []
    for proc in procs:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
        summaries.append(json.loads(out.decode().strip().splitlines()[-1]))
    outcomes: Counter[str] = Counter()
    applied: list[int] = []
    for s in summaries:
        outcomes.update(s["outcomes"])
        applied.extend(s["applied_ids"])
    assert sum(outcomes.values()) == 800
    ledger = await count(services.db, "member_transitions")
    assert len(applied) == len(set(applied)) == ledger  # every applied write is in the ledger
    stats = await check_invariants(services.db)
    assert stats["members"] == 10
    dead = await count(services.db, "dead_letters")
    assert dead == sum(v for k, v in outcomes.items() if k.startswith("dead_lettered"))
    print(f"\n4 processes x 200 over 10 members: {dict(outcomes)}, "
          f"conflicts={sum(s['conflicts'] for s in summaries)}, "
          f"retries={sum(s['retries'] for s in summaries)}, dead letters={dead}, {stats}")
