"""The fault seam: failures put into the stores at named points, where a test needs them.

Every store takes an optional `Faults`; production wiring passes none, and then a store's
only cost is one `is None` test per statement. A test that needs a write to lose its
compare-and-set, a connection to drop mid-write, a statement to time out, a second writer
to land between a read and a write, or one writer held until another is in flight, asks
the `Faults` of its services for it:

    faults.lose_cas(times=2)                              # the next two CAS writes lose
    faults.drop_connection(Point.DEAD_LETTERS_INSERT)      # the connection really goes
    gate = faults.hold(Point.MEMBERS_WRITE, when=lambda hit: hit.key == "web")
    await gate.reached.wait(); ...; gate.release()

A point is entered just before the store's statement runs, with what the statement is for
(`Hit`). Rules are tried in the order they were added; the first that matches acts.
"""

from __future__ import annotations

import asyncio
import enum
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg


class Point(enum.StrEnum):
    """Where a store can be made to fail. Each is entered once per statement it names."""

    MEMBERS_READ = "members.read"  # the read of a transition (state, version, prior key)
    MEMBERS_WRITE = "members.write"  # the CAS + ledger + outbox statement (can lose)
    DEAD_LETTERS_INSERT = "dead_letters.insert"  # a new dead-letter record
    DEAD_LETTERS_CLAIM = "dead_letters.claim"  # a retry's claim of entries (can lose)
    DEAD_LETTERS_OUTCOME = "dead_letters.outcome"  # a remediation's outcome (can lose)
    OUTBOX_CLAIM = "outbox.claim"  # a worker's claim of due lanes
    OUTBOX_RECORD = "outbox.record"  # a delivery attempt's outcome
    DELIVERIES_RETRY = "deliveries.retry"  # staff's retry of failed deliveries
    GUILDS_READ = "guilds.read"  # a guild's settings


@dataclass(frozen=True)
class Hit:
    """One entry into a point: what the statement is for."""

    point: Point
    number: int  # 1 for the first entry into this point since the Faults was made
    guild_id: int | None = None
    user_id: int | None = None
    key: str | None = None  # the idempotency key of a member write or read
    operation: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


Predicate = Callable[[Hit], bool]


class _Action(enum.Enum):
    LOSE = "lose"
    RAISE = "raise"
    DROP = "drop"
    CALL = "call"
    HOLD = "hold"


@dataclass
class Rule:
    point: Point
    action: _Action
    times: int | None  # None: every matching hit
    when: Predicate | None
    error: Callable[[], BaseException] | None = None
    call: Callable[[Hit], Awaitable[None]] | None = None
    hold: Hold | None = None
    fired: int = 0

    def matches(self, hit: Hit) -> bool:
        if self.point != hit.point or (self.times is not None and self.fired >= self.times):
            return False
        return self.when is None or self.when(hit)


class Hold:
    """A writer stopped at a point: `reached` is set when one arrives (`hits` counts them);
    they wait until `release()`."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self._go = asyncio.Event()
        self.hits: list[Hit] = []

    async def wait(self, hit: Hit) -> None:
        self.hits.append(hit)
        self.reached.set()
        await self._go.wait()

    def release(self) -> None:
        self._go.set()


def connection_dropped() -> BaseException:
    """What asyncpg raises when the server closes the connection under a statement."""
    error: BaseException = asyncpg.exceptions.ConnectionDoesNotExistError(
        "connection was closed in the middle of operation")
    return error


def statement_timed_out() -> BaseException:
    """What asyncpg raises when `statement_timeout` cancels a statement."""
    error: BaseException = asyncpg.exceptions.QueryCanceledError(
        "canceling statement due to statement timeout")
    return error


class Faults:
    """The rules of one set of services (see the module's docstring)."""

    def __init__(self) -> None:
        self._rules: list[Rule] = []
        self.hits: Counter[Point] = Counter()

    # ---- asking for failures ------------------------------------------------------------

    def lose_cas(self, point: Point = Point.MEMBERS_WRITE, *, times: int | None = None,
                 when: Predicate | None = None) -> Rule:
        """The compare-and-set at `point` changes nothing, as when another writer was first
        (members.write, dead_letters.claim, dead_letters.outcome)."""
        if point not in (Point.MEMBERS_WRITE, Point.DEAD_LETTERS_CLAIM,
                         Point.DEAD_LETTERS_OUTCOME):
            raise ValueError(f"{point} has no compare-and-set to lose")
        return self._add(Rule(point, _Action.LOSE, times, when))

    def fail(self, point: Point, error: Callable[[], BaseException], *,
             times: int | None = None, when: Predicate | None = None) -> Rule:
        """The statement at `point` raises `error()` instead of running."""
        return self._add(Rule(point, _Action.RAISE, times, when, error=error))

    def statement_timeout(self, point: Point, *, times: int | None = None,
                          when: Predicate | None = None) -> Rule:
        return self.fail(point, statement_timed_out, times=times, when=when)

    def drop_connection(self, point: Point, *, times: int | None = None,
                        when: Predicate | None = None) -> Rule:
        """The statement's connection is really closed (terminated) just before it runs: it
        fails with whatever the driver raises, and the pool replaces the connection."""
        return self._add(Rule(point, _Action.DROP, times, when))

    def call(self, point: Point, fn: Callable[[Hit], Awaitable[None]], *,
             times: int | None = None, when: Predicate | None = None) -> Rule:
        """Run `fn` (another writer, say) when the point is reached, then go on."""
        return self._add(Rule(point, _Action.CALL, times, when, call=fn))

    def hold(self, point: Point, *, times: int | None = 1,
             when: Predicate | None = None) -> Hold:
        """Stop writers at the point until `release()`."""
        gate = Hold()
        self._add(Rule(point, _Action.HOLD, times, when, hold=gate))
        return gate

    def clear(self) -> None:
        self._rules.clear()

    def _add(self, rule: Rule) -> Rule:
        self._rules.append(rule)
        return rule

    # ---- what the stores call ---------------------------------------------------------

    async def enter(self, point: Point, connection: Any = None, **context: Any) -> bool:
        """Called by a store before its statement at `point`. Returns True when the
        statement must report "changed nothing" (a lost compare-and-set); raises the
        failure asked for; else returns False and the statement runs."""
        self.hits[point] += 1
        hit = Hit(point, self.hits[point], **context)
        for rule in self._rules:
            if not rule.matches(hit):
                continue
            rule.fired += 1
            if rule.action is _Action.LOSE:
                return True
            if rule.action is _Action.RAISE:
                assert rule.error is not None
                raise rule.error()
            if rule.action is _Action.DROP:
                await _terminate(connection)
                return False
            if rule.action is _Action.CALL:
                assert rule.call is not None
                await rule.call(hit)
                return False
            assert rule.hold is not None
            await rule.hold.wait(hit)
            return False
        return False


async def _terminate(connection: Any) -> None:
    """Close the connection under the statement about to run: an asyncpg connection, or a
    SQLAlchemy AsyncConnection's driver connection."""
    if connection is None:
        raise ValueError("this point has no connection to drop")
    if isinstance(connection, asyncpg.Connection):
        connection.terminate()
        return
    raw = await connection.get_raw_connection()
    raw.driver_connection.terminate()
