"""The guard, tested from the transition table itself (no database)."""

from __future__ import annotations

import itertools

import pytest

from domain.commands import TransitionCommand
from domain.errors import InvalidInput
from domain.lifecycle import (
    EXIT_STATES,
    RULES,
    TRANSITIONS,
    Operation,
    Source,
    State,
    TransitionNotAllowed,
    allowed_operations,
    target_state,
)
from domain.redaction import redact, register_secret

ALL_FROM: list[State | None] = [None, *State]
PAIRS = list(itertools.product(Operation, ALL_FROM))
ALLOWED = [(op, s) for op, s in PAIRS if (op, s) in TRANSITIONS]
FORBIDDEN = [(op, s) for op, s in PAIRS if (op, s) not in TRANSITIONS]


@pytest.mark.parametrize(("op", "source"), ALLOWED, ids=lambda v: str(v))
def test_allowed_transition_leads_to_table_target(op: Operation, source: State | None) -> None:
    assert target_state(op, source) == TRANSITIONS[(op, source)]


@pytest.mark.parametrize(("op", "source"), FORBIDDEN, ids=lambda v: str(v))
def test_forbidden_transition_is_refused_with_both_names(op: Operation,
                                                          source: State | None) -> None:
    with pytest.raises(TransitionNotAllowed) as info:
        target_state(op, source)
    assert op.value in str(info.value)
    assert (source.value if source else "no record") in str(info.value)


def test_table_matches_the_spec_in_lifecycle_md() -> None:
    # Spot checks of rows the reference spec got wrong or that are easy to get wrong.
    assert TRANSITIONS[(Operation.JOIN, None)] == State.JOINED
    assert TRANSITIONS[(Operation.JOIN, State.KICKED)] == State.JOINED
    assert (Operation.JOIN, State.BANNED) not in TRANSITIONS
    for state in State:
        if state not in EXIT_STATES:
            assert TRANSITIONS[(Operation.LEAVE, state)] == State.LEFT_GUILD
            assert TRANSITIONS[(Operation.KICK, state)] == State.KICKED
        if state != State.BANNED:
            assert TRANSITIONS[(Operation.BAN, state)] == State.BANNED
    assert TRANSITIONS[(Operation.UNBAN, State.BANNED)] == State.LEFT_GUILD
    assert len(RULES) == len(Operation)
    assert len(ALLOWED) == 1 * 3 + 1 + 2 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 8 + 8 + 10 + 1


@pytest.mark.parametrize("state", [s for s in State if s != State.VERIFICATION_PENDING])
def test_manual_verification_only_from_pending(state: State) -> None:
    with pytest.raises(TransitionNotAllowed, match="verification_pending"):
        target_state(Operation.VERIFY, state)


def test_verified_member_can_be_reverified() -> None:
    assert Operation.REVERIFY in allowed_operations(State.VERIFIED)
    assert target_state(Operation.REVERIFY, State.VERIFIED) == State.VERIFICATION_PENDING


def test_command_rejects_bad_ids_and_keys() -> None:
    base = dict(guild_id=1, user_id=2, operation=Operation.JOIN, source=Source.BOT,
                idempotency_key="k")
    for bad in ({"guild_id": 0}, {"user_id": -5}, {"user_id": 2**63}, {"idempotency_key": ""},
                {"idempotency_key": "x" * 201}, {"reason": "r" * 1001}, {"actor_id": True}):
        with pytest.raises(InvalidInput):
            TransitionCommand(**{**base, **bad})  # type: ignore[arg-type]


def test_command_payload_round_trips() -> None:
    cmd = TransitionCommand(guild_id=1, user_id=2, operation=Operation.VERIFY,
                            source=Source.API, idempotency_key="k", actor_id=3, reason="r",
                            expected_state=State.VERIFICATION_PENDING, expected_version=6)
    assert TransitionCommand.from_payload(cmd.to_payload()) == cmd


def test_redaction_scrubs_tokens_and_passwords() -> None:
    register_secret("s3cr3t-api-token-value")
    token = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.abcdefghijklmnopqrstuvwxyz0123"
    text = (f"login with {token} failed; api s3cr3t-api-token-value; "
            "postgresql://lifeline:hunter2@db/x; Authorization: Bearer abcdefghijkl")
    out = redact(text)
    for secret in (token, "s3cr3t-api-token-value", "hunter2", "abcdefghijkl"):
        assert secret not in out
    assert len(redact("x" * 5000)) == 2000


def test_catch_up_follows_the_table_from_every_state() -> None:
    from domain.lifecycle import catch_up

    flags = dict(started_onboarding=True, completed_onboarding=True, pending=False,
                 eligible=True)
    for start in [None, *State]:
        state = start
        for op in catch_up(start, **flags):
            state = target_state(op, state)  # every step allowed by the table
        if start in (None, *EXIT_STATES, State.JOINED, State.ONBOARDING_IN_PROGRESS,
                     State.ONBOARDING_COMPLETED, State.ROLE_ELIGIBLE):
            assert state == State.RULES_ACCEPTED
        else:
            assert state == start  # already past onboarding: nothing to catch up
    assert catch_up(State.JOINED, started_onboarding=True, completed_onboarding=False,
                    pending=True, eligible=True) == [Operation.START_ONBOARDING]
    assert catch_up(State.ONBOARDING_COMPLETED, started_onboarding=True,
                    completed_onboarding=True, pending=False, eligible=False) == []
