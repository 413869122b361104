"""The role drift rule: what repair does for one member, from the stored state, the ledger
and whether Discord shows the member holding the verified role."""

from __future__ import annotations

import pytest

from domain.lifecycle import EXIT_STATES, State
from domain.persistence.role_drift import StoredRole
from domain.role_drift import DEMOTED_TO, RepairCounts, Verdict, verdict


def stored(state: State | None, *, left_verified: bool = False,
           delivery_open: bool = False) -> StoredRole:
    return StoredRole(1, state, 3, left_verified, delivery_open)


def test_a_verified_member_without_the_role_gets_it() -> None:
    assert verdict(stored(State.VERIFIED), holds_role=False) is Verdict.GRANT


def test_a_member_lifeline_moved_out_of_verified_loses_the_role() -> None:
    member = stored(State.VERIFICATION_PENDING, left_verified=True)
    assert verdict(member, holds_role=True) is Verdict.REMOVE


def test_a_role_lifeline_never_took_part_in_is_left_alone() -> None:
    """Held by a member Lifeline never moved out of `verified`: a person gave it."""
    assert verdict(stored(State.JOINED), holds_role=True) is Verdict.HUMAN
    assert verdict(stored(State.RULES_ACCEPTED), holds_role=True) is Verdict.HUMAN


@pytest.mark.parametrize("state,holds", [(State.VERIFIED, True), (State.JOINED, False),
                                         (State.VERIFICATION_PENDING, False)])
def test_a_member_as_the_state_says_is_already_right(state: State, holds: bool) -> None:
    assert verdict(stored(state, left_verified=True), holds_role=holds) is Verdict.RIGHT


def test_an_open_role_delivery_is_not_repeated() -> None:
    member = stored(State.VERIFIED, delivery_open=True)
    assert verdict(member, holds_role=False) is Verdict.QUEUED


@pytest.mark.parametrize("state", [None, *sorted(EXIT_STATES)])
def test_no_record_or_an_exit_state_decides_nothing(state: State | None) -> None:
    assert verdict(stored(state, left_verified=True), holds_role=True) is Verdict.UNTRACKED


def test_a_leave_from_verified_is_not_a_demotion() -> None:
    """The role goes with a member who leaves: only moves Lifeline takes the role away on
    count as having moved the member out of `verified`."""
    assert State.VERIFICATION_PENDING in DEMOTED_TO
    assert not set(DEMOTED_TO) & (EXIT_STATES | {State.VERIFIED})


def test_the_summary_says_what_was_done_and_what_was_left() -> None:
    assert RepairCounts(2, 1, 40).summary() == "granted 2, removed 1, already right 40"
    assert RepairCounts(0, 0, 5, left_alone=1).summary() == (
        "granted 0, removed 0, already right 5; 1 left alone (hold the role, never verified "
        "by Lifeline)")
