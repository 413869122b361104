"""Hypothesis state machine: two writers (bot and web app) submit operations in random
interleavings on three members; every invariant holds at every step and at the end."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlalchemy import text

from domain.commands import TransitionCommand
from domain.errors import TransitionDeadLettered
from domain.lifecycle import Operation, Source, TransitionNotAllowed, allowed_operations
from domain.persistence.database import Database
from tests.helpers import check_invariants
from tests.wiring import ProcessServices

_guilds = itertools.count(700_000_000_000_000_000)
MEMBERS = [1001, 1002, 1003]


class TwoWriters(RuleBasedStateMachine):
    loop: asyncio.AbstractEventLoop
    db: Database

    def __init__(self) -> None:
        super().__init__()
        self.guild = next(_guilds)
        self.service = ProcessServices(self.db, transition_max_attempts=3,
                                transition_backoff_initial_seconds=0.0005,
                                transition_backoff_max_seconds=0.002).transitions
        self.tasks: list[asyncio.Task[str]] = []

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    async def _apply(self, source: Source, op: Operation, user: int) -> str:
        command = TransitionCommand(guild_id=self.guild, user_id=user, operation=op,
                                    source=source, idempotency_key=uuid.uuid4().hex)
        try:
            await self.service.apply(command)
            return "applied"
        except TransitionNotAllowed:
            return "not_allowed"
        except TransitionDeadLettered:
            return "dead_lettered"

    @rule(source=st.sampled_from([Source.BOT, Source.API]), op=st.sampled_from(list(Operation)),
          user=st.sampled_from(MEMBERS))
    def submit_any(self, source: Source, op: Operation, user: int) -> None:
        self.tasks.append(self.loop.create_task(self._apply(source, op, user)))

    @rule(source=st.sampled_from([Source.BOT, Source.API]), user=st.sampled_from(MEMBERS),
          pick=st.integers(min_value=0, max_value=99))
    def submit_plausible(self, source: Source, user: int, pick: int) -> None:
        # Draw a number, not an operation: what is plausible depends on the database.
        member = self.run(self.service.get_member(self.guild, user))
        options = allowed_operations(member.state if member else None)
        op = options[pick % len(options)]
        self.tasks.append(self.loop.create_task(self._apply(source, op, user)))

    @rule(ticks=st.integers(min_value=1, max_value=6))
    def let_writers_run(self, ticks: int) -> None:
        for _ in range(ticks):
            self.run(asyncio.sleep(0))

    @invariant()
    def ledger_matches_members(self) -> None:
        self.run(check_invariants(self.db))

    def teardown(self) -> None:
        async def wait_all() -> list[str]:
            return list(await asyncio.gather(*self.tasks))

        outcomes = Counter(self.run(wait_all()))
        self.run(check_invariants(self.db))

        async def counts() -> tuple[int, int]:
            async with self.db.autocommit() as conn:
                ledger = (await conn.execute(text(
                    "SELECT count(*) FROM member_transitions WHERE guild_id = :g"),
                    {"g": self.guild})).scalar_one()
                dead = (await conn.execute(text(
                    "SELECT count(*) FROM dead_letters WHERE guild_id = :g"),
                    {"g": self.guild})).scalar_one()
            return ledger, dead

        ledger, dead = self.run(counts())
        assert ledger == outcomes["applied"], (ledger, outcomes)
        assert dead == outcomes["dead_lettered"], (dead, outcomes)


def test_two_writers_random_interleavings_keep_invariants(migrated: str) -> None:
    loop = asyncio.new_event_loop()
    db = Database(migrated, pool_size=4, max_overflow=4)
    TwoWriters.loop, TwoWriters.db = loop, db
    try:
        machine = TwoWriters.TestCase
        machine.settings = settings(max_examples=30, stateful_step_count=25, deadline=None,
                                    suppress_health_check=[HealthCheck.too_slow])
        machine().runTest()
    finally:
        loop.run_until_complete(db.dispose())
        loop.close()


@pytest.fixture(autouse=True)
def _no_clean_needed() -> None:
    """Each example uses a guild of its own, so no truncation between examples."""
