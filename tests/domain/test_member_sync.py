"""Member flags -> operations (one rule for live updates and reconcile), the sync's steps
and keys, and echo detection, table-driven."""

from __future__ import annotations

import itertools

import pytest

from domain.lifecycle import (
    ONBOARDING_PATH,
    TRANSITIONS,
    FromState,
    Operation,
    State,
    is_echo,
    target_state,
)
from domain.member_sync import MemberFlags, catch_up, next_sync_step, sync_key

Op = Operation
ALL_FROM: list[FromState] = [None, *State]


def F(letters: str = "") -> MemberFlags:
    """S started, C completed onboarding, P pending screening, R holds the eligibility role."""
    assert set(letters) <= set("SCPR"), letters
    return MemberFlags(started_onboarding="S" in letters, completed_onboarding="C" in letters,
                       pending="P" in letters, holds_eligibility_role="R" in letters)


EVERY_FLAGS = [F("".join(c)) for n in range(5) for c in itertools.combinations("SCPR", n)]


def through_the_guard(state: FromState, ops: list[Operation]) -> FromState:
    """What the service makes of ops in order: a refused one leaves the state as it is."""
    for op in ops:
        state = TRANSITIONS.get((op, state), state)
    return state


# ---- the reconcile rule: the stored state and what Discord shows now

JOIN, UNBAN = Op.JOIN, Op.UNBAN
CATCH_UP = [
    # stored state, flags now, eligibility role configured, operations
    (None, "", True, [JOIN]),
    (None, "P", False, [JOIN]),
    (None, "SC", False, [JOIN, Op.COMPLETE_ONBOARDING, Op.MARK_ROLE_ELIGIBLE, Op.ACCEPT_RULES]),
    (None, "SCP", False, [JOIN, Op.COMPLETE_ONBOARDING, Op.MARK_ROLE_ELIGIBLE]),
    (None, "SC", True, [JOIN, Op.COMPLETE_ONBOARDING]),
    (State.KICKED, "", True, [JOIN]),
    (State.LEFT_GUILD, "SCR", True,
     [JOIN, Op.COMPLETE_ONBOARDING, Op.MARK_ROLE_ELIGIBLE, Op.ACCEPT_RULES]),
    (State.BANNED, "S", True, [UNBAN, JOIN, Op.START_ONBOARDING]),
    (State.BANNED, "", False, [UNBAN, JOIN]),
    (State.JOINED, "SP", True, [Op.START_ONBOARDING]),
    (State.JOINED, "C", True, [Op.COMPLETE_ONBOARDING]),  # completed without started
    (State.JOINED, "R", True, []),
    (State.ONBOARDING_IN_PROGRESS, "S", True, []),
    (State.ONBOARDING_IN_PROGRESS, "SCR", True,
     [Op.COMPLETE_ONBOARDING, Op.MARK_ROLE_ELIGIBLE, Op.ACCEPT_RULES]),
    (State.ONBOARDING_COMPLETED, "SC", True, []),  # waits for the role
    (State.ONBOARDING_COMPLETED, "SC", False, [Op.MARK_ROLE_ELIGIBLE, Op.ACCEPT_RULES]),
    (State.ONBOARDING_COMPLETED, "SCRP", True, [Op.MARK_ROLE_ELIGIBLE]),
    (State.ROLE_ELIGIBLE, "SCP", True, []),
    (State.ROLE_ELIGIBLE, "", True, [Op.ACCEPT_RULES]),  # level-triggered: flags not re-read
    *((s, "SCR", True, []) for s in (State.RULES_ACCEPTED, State.VERIFICATION_PENDING,
                                     State.VERIFIED, State.REJECTED_NOT_ELIGIBLE)),
]


@pytest.mark.parametrize(("current", "flags", "configured", "expected"), CATCH_UP,
                         ids=[f"{s or 'new'}:{f or '-'}{'' if c else ' no-role'}"
                              for s, f, c, _ in CATCH_UP])
def test_reconcile_rule(current: FromState, flags: str, configured: bool,
                        expected: list[Operation]) -> None:
    assert catch_up(current, F(flags), eligibility_role_configured=configured) == expected


@pytest.mark.parametrize("current", ALL_FROM, ids=str)
def test_catch_up_walks_the_table_and_a_second_run_does_nothing(current: FromState) -> None:
    for flags, configured in itertools.product(EVERY_FLAGS, [True, False]):
        state = current
        for op in catch_up(current, flags, eligibility_role_configured=configured):
            state = target_state(op, state)  # every step allowed, none refused
        assert catch_up(state, flags, eligibility_role_configured=configured) == []
        if flags == F("SC") and not configured and current in (None, *ONBOARDING_PATH[:4],
                                                                State.KICKED, State.LEFT_GUILD,
                                                                State.BANNED):
            assert state == State.RULES_ACCEPTED


# ---- the sync: one step at a time, keyed by the version it starts from

def test_stepping_the_sync_ends_where_catch_up_leads() -> None:
    """Applying next_sync_step until it answers None walks exactly catch_up's path, every
    step one the table allows: the same end, whatever the member's state and flags."""
    for current, flags, configured in itertools.product(ALL_FROM, EVERY_FLAGS,
                                                        (True, False)):
        state, steps = current, []
        while (op := next_sync_step(state, flags, eligibility_role_configured=configured)):
            steps.append(op)
            state = TRANSITIONS[(op, state)]
            assert len(steps) <= 8, (current, flags)
        assert steps == catch_up(current, flags, eligibility_role_configured=configured), \
            (current, flags, configured)


def test_screening_passed_before_onboarding_waits_for_onboarding() -> None:
    flags = MemberFlags(pending=False)
    assert next_sync_step(State.JOINED, flags, eligibility_role_configured=False) is None
    done = MemberFlags(started_onboarding=True, completed_onboarding=True, pending=False)
    assert catch_up(State.JOINED, done, eligibility_role_configured=False) == [
        Op.COMPLETE_ONBOARDING, Op.MARK_ROLE_ELIGIBLE, Op.ACCEPT_RULES]


def test_states_the_web_app_and_staff_own_are_left_alone() -> None:
    done = MemberFlags(started_onboarding=True, completed_onboarding=True, pending=False)
    for state in (State.VERIFICATION_PENDING, State.VERIFIED, State.REJECTED_NOT_ELIGIBLE,
                  State.RULES_ACCEPTED):
        assert next_sync_step(state, done, eligibility_role_configured=False) is None


def test_a_member_discord_shows_present_but_stored_as_gone_is_readmitted() -> None:
    for gone in (None, State.LEFT_GUILD, State.KICKED):
        assert next_sync_step(gone, F(""), eligibility_role_configured=False) == Op.JOIN
    assert next_sync_step(State.BANNED, F(""), eligibility_role_configured=False) == Op.UNBAN


def test_sync_keys_name_the_operation_and_the_version_they_start_from() -> None:
    assert sync_key(Op.JOIN, 1, 2, 0) == "sync:join:1:2:v0"
    # The same read asks for the same write; a re-admission (a newer version) for a new one.
    assert sync_key(Op.JOIN, 1, 2, 7) != sync_key(Op.JOIN, 1, 2, 0)
    assert sync_key(Op.JOIN, 1, 2, 7) != sync_key(Op.UNBAN, 1, 2, 7)
    keys = {sync_key(op, 1, 2, v) for op in Operation for v in range(20)}
    assert len(keys) == len(Operation) * 20
    assert all(len(k) <= 200 for k in keys)  # TransitionCommand's limit


# ---- echoes: refused events that only repeat what already happened

ECHOES = [
    (Op.LEAVE, None, True), (Op.LEAVE, State.KICKED, True), (Op.LEAVE, State.BANNED, True),
    (Op.LEAVE, State.LEFT_GUILD, True), (Op.KICK, None, True), (Op.KICK, State.BANNED, True),
    (Op.BAN, State.BANNED, True), (Op.UNBAN, None, True),
    (Op.UNBAN, State.JOINED, False), (Op.UNBAN, State.LEFT_GUILD, False),
    (Op.START_ONBOARDING, None, True), (Op.START_ONBOARDING, State.KICKED, True),
    (Op.START_ONBOARDING, State.ONBOARDING_IN_PROGRESS, True),
    (Op.START_ONBOARDING, State.ONBOARDING_COMPLETED, True),
    (Op.START_ONBOARDING, State.VERIFIED, True),
    (Op.START_ONBOARDING, State.REJECTED_NOT_ELIGIBLE, False),
    (Op.COMPLETE_ONBOARDING, State.ONBOARDING_COMPLETED, True),
    (Op.COMPLETE_ONBOARDING, State.ROLE_ELIGIBLE, True),
    (Op.MARK_ROLE_ELIGIBLE, State.JOINED, False),
    (Op.MARK_ROLE_ELIGIBLE, State.ONBOARDING_IN_PROGRESS, False),
    (Op.MARK_ROLE_ELIGIBLE, State.ROLE_ELIGIBLE, True),
    (Op.MARK_ROLE_ELIGIBLE, State.RULES_ACCEPTED, True),
    (Op.ACCEPT_RULES, State.JOINED, False),  # screening before onboarding: a dead letter
    (Op.ACCEPT_RULES, State.ONBOARDING_COMPLETED, False),
    (Op.ACCEPT_RULES, State.RULES_ACCEPTED, True),
    (Op.ACCEPT_RULES, State.VERIFICATION_PENDING, True),
    (Op.ACCEPT_RULES, State.LEFT_GUILD, True),
    (Op.ACCEPT_RULES, State.REJECTED_NOT_ELIGIBLE, False),
    (Op.JOIN, State.BANNED, False), (Op.JOIN, State.JOINED, True),  # already present
    (Op.JOIN, State.VERIFIED, True), (Op.JOIN, State.REJECTED_NOT_ELIGIBLE, True),
    (Op.VERIFY, State.VERIFIED, False), (Op.REQUEST_VERIFICATION, State.VERIFIED, False),
]


@pytest.mark.parametrize(("op", "current", "echo"), ECHOES, ids=str)
def test_echo(op: Operation, current: FromState, echo: bool) -> None:
    assert is_echo(op, current) is echo


def test_an_echo_is_always_a_refused_operation() -> None:
    for op, current in itertools.product(Operation, ALL_FROM):
        if is_echo(op, current):
            assert (op, current) not in TRANSITIONS, (op, current)


@pytest.mark.parametrize("op", [Op.REQUEST_VERIFICATION, Op.VERIFY, Op.REJECT,
                                Op.REOPEN, Op.REVERIFY])
def test_operations_without_an_echo_rule_never_echo(op: Operation) -> None:
    assert not any(is_echo(op, current) for current in ALL_FROM)
