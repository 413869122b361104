"""Member flags -> operations (live and reconcile) and echo detection, table-driven."""

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
from domain.member_sync import MemberFlags, catch_up, member_update_operations

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


# ---- the live rule: one gateway member update

START = (Op.START_ONBOARDING, "started onboarding")
COMPLETE = (Op.COMPLETE_ONBOARDING, "completed onboarding")
ELIGIBLE_NO_ROLE = (Op.MARK_ROLE_ELIGIBLE, "no eligibility role configured")
ELIGIBLE_HOLDS = (Op.MARK_ROLE_ELIGIBLE, "holds the eligibility role")
ELIGIBLE_GRANTED = (Op.MARK_ROLE_ELIGIBLE, "was granted the eligibility role")
ACCEPT = (Op.ACCEPT_RULES, "passed membership screening")

LIVE = [
    # before, after, eligibility role configured, operations with their reasons
    ("", "", True, []),
    ("", "S", True, [START]),
    ("", "S", False, [START]),
    ("S", "S", False, []),
    ("", "SC", True, [COMPLETE]),  # started and completed at once: no start
    ("", "SCR", True, [COMPLETE, ELIGIBLE_HOLDS]),
    ("", "SC", False, [COMPLETE, ELIGIBLE_NO_ROLE]),
    ("S", "SC", False, [COMPLETE, ELIGIBLE_NO_ROLE]),
    ("S", "SC", True, [COMPLETE]),  # waits for the role
    ("S", "SCR", True, [COMPLETE, ELIGIBLE_HOLDS]),
    ("R", "CR", True, [COMPLETE, ELIGIBLE_HOLDS]),
    ("SC", "SCR", True, [ELIGIBLE_GRANTED]),
    ("SC", "SCR", False, []),  # no role configured: marked with the completion already
    ("S", "SR", True, []),  # granted before completion: marked when onboarding completes
    ("SR", "SCR", True, [COMPLETE, ELIGIBLE_HOLDS]),
    ("SCR", "SCR", True, []),
    ("SCR", "SC", True, []),  # role removed: nothing
    ("C", "SC", True, []),  # started after completed: nothing
    ("SC", "S", True, []),  # completed went back: nothing
    ("P", "", True, [ACCEPT]),
    ("P", "", False, [ACCEPT]),
    ("", "P", True, []),  # pending again: nothing
    ("P", "P", True, []),
    ("SP", "SC", False, [COMPLETE, ELIGIBLE_NO_ROLE, ACCEPT]),
    ("SCP", "SCR", True, [ELIGIBLE_GRANTED, ACCEPT]),
    ("P", "SCR", True, [COMPLETE, ELIGIBLE_HOLDS, ACCEPT]),
]


@pytest.mark.parametrize(("before", "after", "configured", "expected"), LIVE,
                         ids=[f"{b or '-'}>{a or '-'}{'' if c else ' no-role'}"
                              for b, a, c, _ in LIVE])
def test_live_rule(before: str, after: str, configured: bool,
                   expected: list[tuple[Operation, str]]) -> None:
    assert member_update_operations(F(before), F(after),
                                    eligibility_role_configured=configured) == expected


@pytest.mark.parametrize("configured", [True, False])
def test_live_operations_come_in_lifecycle_order_and_once(configured: bool) -> None:
    for before, after in itertools.product(EVERY_FLAGS, EVERY_FLAGS):
        ops = [op for op, _ in member_update_operations(
            before, after, eligibility_role_configured=configured)]
        targets = [ONBOARDING_PATH.index(target_state(op, _from(op))) for op in ops]
        assert targets == sorted(set(targets)), (before, after, ops)
        if before == after:
            assert ops == []


def _from(op: Operation) -> State:
    """A state the onboarding operation is allowed from (to read its target)."""
    return next(s for s in State if (op, s) in TRANSITIONS)


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


# ---- live and reconcile side by side


def _realistic_updates() -> list[tuple[MemberFlags, MemberFlags]]:
    """Flags only move forward: onboarding and the role get set, screening gets passed."""
    updates = []
    for before, after in itertools.product(EVERY_FLAGS, EVERY_FLAGS):
        forward = all(not getattr(before, f) or getattr(after, f)
                      for f in ("started_onboarding", "completed_onboarding",
                                "holds_eligibility_role")) and (before.pending or not after.pending)
        if forward and before != after:
            updates.append((before, after))
    return updates


@pytest.mark.parametrize("configured", [True, False])
def test_live_and_reconcile_agree_except_on_screening_passed_early(configured: bool) -> None:
    """For a member up to date before the update, both rules end in the same state, except
    where accept_rules is edge-triggered live and level-triggered in reconcile (documented in
    docs/lifecycle.md; merging the rules is a later issue's behaviour change)."""
    differ = []
    for before, after in _realistic_updates():
        stored = through_the_guard(State.JOINED, catch_up(
            State.JOINED, before, eligibility_role_configured=configured))
        live = through_the_guard(stored, [op for op, _ in member_update_operations(
            before, after, eligibility_role_configured=configured)])
        reconciled = through_the_guard(stored, catch_up(
            stored, after, eligibility_role_configured=configured))
        if live != reconciled:
            differ.append((before, after, live, reconciled))
    assert differ, "the rules now agree: update this test and docs/lifecycle.md"
    for before, after, live, reconciled in differ:
        assert not before.pending and not after.pending, (before, after)
        assert (live, reconciled) == (State.ROLE_ELIGIBLE, State.RULES_ACCEPTED)


def test_screening_passed_before_onboarding_waits_for_reconcile() -> None:
    # Live: the pending edge comes while the member is joined (refused, not an echo: a dead
    # letter), then onboarding completes; no edge is left to accept the rules.
    state = through_the_guard(State.JOINED, [op for op, _ in member_update_operations(
        F("P"), F(""), eligibility_role_configured=False)])
    assert state == State.JOINED and not is_echo(Op.ACCEPT_RULES, State.JOINED)
    state = through_the_guard(state, [op for op, _ in member_update_operations(
        F(""), F("SC"), eligibility_role_configured=False)])
    assert state == State.ROLE_ELIGIBLE
    assert catch_up(state, F("SC"), eligibility_role_configured=False) == [Op.ACCEPT_RULES]


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
    (Op.JOIN, State.BANNED, False), (Op.JOIN, State.JOINED, False),
    (Op.VERIFY, State.VERIFIED, False), (Op.REQUEST_VERIFICATION, State.VERIFIED, False),
]


@pytest.mark.parametrize(("op", "current", "echo"), ECHOES, ids=str)
def test_echo(op: Operation, current: FromState, echo: bool) -> None:
    assert is_echo(op, current) is echo


def test_an_echo_is_always_a_refused_operation() -> None:
    for op, current in itertools.product(Operation, ALL_FROM):
        if is_echo(op, current):
            assert (op, current) not in TRANSITIONS, (op, current)


@pytest.mark.parametrize("op", [Op.JOIN, Op.REQUEST_VERIFICATION, Op.VERIFY, Op.REJECT,
                                Op.REOPEN, Op.REVERIFY])
def test_operations_without_an_echo_rule_never_echo(op: Operation) -> None:
    assert not any(is_echo(op, current) for current in ALL_FROM)
