"""The member lifecycle of ../shared/design/lifecycle.md as data.

`TRANSITIONS` is the single source for the guard, the docs and the slash
command choices: every allowed (operation, from_state) pair and its target.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from domain.errors import DomainError


class State(enum.StrEnum):
    JOINED = "joined"
    ONBOARDING_IN_PROGRESS = "onboarding_in_progress"
    ONBOARDING_COMPLETED = "onboarding_completed"
    ROLE_ELIGIBLE = "role_eligible"
    RULES_ACCEPTED = "rules_accepted"
    VERIFICATION_PENDING = "verification_pending"
    VERIFIED = "verified"
    REJECTED_NOT_ELIGIBLE = "rejected_not_eligible"
    KICKED = "kicked"
    LEFT_GUILD = "left_guild"
    BANNED = "banned"


class Operation(enum.StrEnum):
    JOIN = "join"
    START_ONBOARDING = "start_onboarding"
    COMPLETE_ONBOARDING = "complete_onboarding"
    MARK_ROLE_ELIGIBLE = "mark_role_eligible"
    ACCEPT_RULES = "accept_rules"
    REQUEST_VERIFICATION = "request_verification"
    VERIFY = "verify"
    REJECT = "reject"
    REOPEN = "reopen"
    REVERIFY = "reverify"
    KICK = "kick"
    LEAVE = "leave"
    BAN = "ban"
    UNBAN = "unban"


class Source(enum.StrEnum):
    BOT = "bot"
    API = "api"
    STAFF = "staff"
    CLI = "cli"
    REPLAY = "replay"


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


def target_state(operation: Operation, current: FromState) -> State:
    """The guard: the state `operation` leads to from `current`, or TransitionNotAllowed."""
    try:
        return TRANSITIONS[(operation, current)]
    except KeyError:
        raise TransitionNotAllowed(operation, current) from None


def allowed_operations(current: FromState) -> list[Operation]:
    return [op for (op, source) in TRANSITIONS if source == current]


def catch_up(current: FromState, *, started_onboarding: bool, completed_onboarding: bool,
             pending: bool, eligible: bool) -> list[Operation]:
    """The onboarding operations that bring a stored member up to what Discord shows now.

    Used when the bot (re)connects: events missed while it was down are derived from the
    member's current flags, in lifecycle order. Exit states and None start with a join
    (after an unban when the member was banned).
    """
    ops: list[Operation] = []
    state: FromState = current
    if state == State.BANNED:  # present again: the unban and the rejoin were missed
        ops.append(Operation.UNBAN)
        state = State.LEFT_GUILD
    if state is None or state in EXIT_STATES:
        ops.append(Operation.JOIN)
        state = State.JOINED
    if state == State.JOINED and (started_onboarding or completed_onboarding):
        if completed_onboarding:
            ops.append(Operation.COMPLETE_ONBOARDING)
            state = State.ONBOARDING_COMPLETED
        else:
            ops.append(Operation.START_ONBOARDING)
            state = State.ONBOARDING_IN_PROGRESS
    if state == State.ONBOARDING_IN_PROGRESS and completed_onboarding:
        ops.append(Operation.COMPLETE_ONBOARDING)
        state = State.ONBOARDING_COMPLETED
    if state == State.ONBOARDING_COMPLETED and eligible:
        ops.append(Operation.MARK_ROLE_ELIGIBLE)
        state = State.ROLE_ELIGIBLE
    if state == State.ROLE_ELIGIBLE and not pending:
        ops.append(Operation.ACCEPT_RULES)
    return ops
