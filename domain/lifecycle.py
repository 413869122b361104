"""The member lifecycle of ../shared/design/lifecycle.md as data, and the policy read from it.

`TRANSITIONS` is the single source for the guard, the docs (docs/lifecycle.md, whose copy of
the spec's table the unit tests compare with it) and the slash command choices: every allowed
(operation, from_state) pair and its target. Around it: the onboarding path, which refused
events are echoes, and the shortest path to a state. What Discord's member flags mean in
operations is domain/member_sync.py.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from domain.errors import DomainError
from domain.vocabulary import Operation as Operation
from domain.vocabulary import Source as Source
from domain.vocabulary import State as State

EXIT_STATES: frozenset[State] = frozenset({State.KICKED, State.LEFT_GUILD, State.BANNED})
NON_EXIT_STATES: frozenset[State] = frozenset(State) - EXIT_STATES

# `None` stands for "no row yet": only `join` may create a member.
FromState = State | None


@dataclass(frozen=True)
class Rule:
    operation: Operation
    sources: frozenset[FromState]
    target: State
    trigger: str


def _rule(op: Operation, sources: frozenset[FromState] | set[FromState], target: State,
          trigger: str) -> Rule:
    return Rule(op, frozenset(sources), target, trigger)


RULES: tuple[Rule, ...] = (
    _rule(Operation.JOIN, {None, State.LEFT_GUILD, State.KICKED}, State.JOINED,
          "gateway GUILD_MEMBER_ADD"),
    _rule(Operation.START_ONBOARDING, {State.JOINED}, State.ONBOARDING_IN_PROGRESS,
          "member flags started_onboarding"),
    _rule(Operation.COMPLETE_ONBOARDING, {State.JOINED, State.ONBOARDING_IN_PROGRESS},
          State.ONBOARDING_COMPLETED, "member flags completed_onboarding"),
    _rule(Operation.MARK_ROLE_ELIGIBLE, {State.ONBOARDING_COMPLETED}, State.ROLE_ELIGIBLE,
          "eligibility role granted, or automatic when none configured"),
    _rule(Operation.ACCEPT_RULES, {State.ROLE_ELIGIBLE}, State.RULES_ACCEPTED,
          "member.pending true -> false"),
    _rule(Operation.REQUEST_VERIFICATION, {State.RULES_ACCEPTED}, State.VERIFICATION_PENDING,
          "member slash command, or web app through the HTTP API"),
    _rule(Operation.VERIFY, {State.VERIFICATION_PENDING}, State.VERIFIED,
          "web app (HTTP API) after its own check; staff manual verify"),
    _rule(Operation.REJECT, {State.VERIFICATION_PENDING}, State.REJECTED_NOT_ELIGIBLE, "staff"),
    _rule(Operation.REOPEN, {State.REJECTED_NOT_ELIGIBLE}, State.VERIFICATION_PENDING, "staff"),
    _rule(Operation.REVERIFY, {State.VERIFIED}, State.VERIFICATION_PENDING,
          "staff reverification campaign"),
    _rule(Operation.KICK, set(NON_EXIT_STATES), State.KICKED, "staff command through the bot"),
    _rule(Operation.LEAVE, set(NON_EXIT_STATES), State.LEFT_GUILD, "gateway GUILD_MEMBER_REMOVE"),
    _rule(Operation.BAN, set(frozenset(State) - {State.BANNED}), State.BANNED,
          "gateway GUILD_BAN_ADD"),
    _rule(Operation.UNBAN, {State.BANNED}, State.LEFT_GUILD, "gateway GUILD_BAN_REMOVE"),
)

RULE_BY_OPERATION: Mapping[Operation, Rule] = {rule.operation: rule for rule in RULES}

# (operation, from_state) -> to_state: the guard table.
TRANSITIONS: Mapping[tuple[Operation, FromState], State] = {
    (rule.operation, source): rule.target for rule in RULES for source in rule.sources
}


class TransitionNotAllowed(DomainError):
    """The operation is not allowed from the member's current state."""

    code = "transition_not_allowed"

    def __init__(self, operation: Operation, current: FromState) -> None:
        self.operation = operation
        self.current = current
        allowed = ", ".join(sorted(s.value if s else "(new member)"
                                   for s in RULE_BY_OPERATION[operation].sources))
        where = current.value if current else "no record (the member never joined)"
        super().__init__(
            f"'{operation.value}' is not allowed from state {where}; allowed from: {allowed}"
        )


class TransitionNotAllowedAfterConflict(TransitionNotAllowed):
    """The fresh read after a lost compare-and-set shows the operation no longer allowed:
    the same refusal a caller gets without the race (an event nobody waits on is kept as a
    `not_applicable` dead letter by its caller)."""



def target_state(operation: Operation, current: FromState) -> State:
    """The guard: the state `operation` leads to from `current`, or TransitionNotAllowed."""
    try:
        return TRANSITIONS[(operation, current)]
    except KeyError:
        raise TransitionNotAllowed(operation, current) from None


def allowed_operations(current: FromState) -> list[Operation]:
    return [op for (op, source) in TRANSITIONS if source == current]


# The onboarding path in order; an onboarding event for a member already further along
# (or gone) is an echo, not a failure.
ONBOARDING_PATH: tuple[State, ...] = (
    State.JOINED, State.ONBOARDING_IN_PROGRESS, State.ONBOARDING_COMPLETED, State.ROLE_ELIGIBLE,
    State.RULES_ACCEPTED, State.VERIFICATION_PENDING, State.VERIFIED)
ONBOARDING_TARGET: Mapping[Operation, State] = {
    op: RULE_BY_OPERATION[op].target
    for op in (Operation.START_ONBOARDING, Operation.COMPLETE_ONBOARDING,
               Operation.MARK_ROLE_ELIGIBLE, Operation.ACCEPT_RULES)
}


def is_echo(op: Operation, current: FromState) -> bool:
    """Whether a gateway event refused from `current` is only an echo of what already
    happened (the leave that follows a kick or ban, a repeated flag update), to be ignored
    rather than kept as a `not_applicable` dead letter: the leave that follows a kick or
    ban, a join for a member already present, a flag update for a member at or past it."""
    if op in (Operation.LEAVE, Operation.KICK):
        return current is None or current in EXIT_STATES
    if op == Operation.BAN:
        return current == State.BANNED
    if op == Operation.UNBAN:
        return current is None
    if op == Operation.JOIN:  # already present: the member sync (or reconcile) admitted them
        return current is not None and current not in EXIT_STATES
    target = ONBOARDING_TARGET.get(op)
    if target is not None:
        if current is None or current in EXIT_STATES:
            return True
        if current in ONBOARDING_PATH:
            return ONBOARDING_PATH.index(current) >= ONBOARDING_PATH.index(target)
    return False


class Step(NamedTuple):
    operation: Operation
    from_state: FromState
    to_state: State


def shortest_path(target: State, start: FromState = None) -> list[Step]:
    """The fewest steps of the table from `start` ("no row" by default) to `target`
    (breadth-first; among equally short paths, the first by the order of RULES)."""
    frontier: deque[tuple[FromState, list[Step]]] = deque([(start, [])])
    seen: set[FromState] = {start}
    while frontier:
        state, steps = frontier.popleft()
        if state == target:
            return steps
        for (op, source), to in TRANSITIONS.items():
            if source == state and to not in seen:
                seen.add(to)
                frontier.append((to, [*steps, Step(op, source, to)]))
    raise ValueError(f"{target} is unreachable from {start or 'no row'}")
