"""The transition table against the spec's table, read from docs/lifecycle.md (no database).

docs/lifecycle.md holds a verbatim copy of the owners' spec tables; these tests parse it, so
a rule that drifts from the spec (a target, a from-state, a missing operation) fails here.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from domain.commands import TransitionCommand
from domain.errors import InvalidInput
from domain.lifecycle import (
    EXIT_STATES,
    ONBOARDING_PATH,
    ONBOARDING_TARGET,
    RULE_BY_OPERATION,
    TRANSITIONS,
    Operation,
    Source,
    State,
    TransitionNotAllowed,
    allowed_operations,
    shortest_path,
    target_state,
)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "lifecycle.md"
BEGIN = "<!-- verbatim: ../shared/design/lifecycle.md, begin -->\n"
END = "<!-- verbatim: ../shared/design/lifecycle.md, end -->"


# ---- the spec, parsed (as plain strings: a name the enums lack must fail a test, not import)


def verbatim_copy() -> str:
    text = DOC.read_text()
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)]


def markdown_table(text: str, heading: str) -> list[dict[str, str]]:
    """The first table after `heading`, as one dict per row keyed by the header cells."""
    lines = text[text.index(heading):].splitlines()
    rows = [line for line in itertools.dropwhile(lambda s: not s.startswith("|"), lines)]
    rows = list(itertools.takewhile(lambda s: s.startswith("|"), rows))
    header, _separator, *body = ([c.strip() for c in r.strip().strip("|").split("|")]
                                 for r in rows)
    return [dict(zip(header, cells, strict=True)) for cells in body]


def names(cell: str) -> list[str]:
    return re.findall(r"`([a-z_]+)`", cell)


SPEC = verbatim_copy()
SPEC_STATES = {row["state"].strip("`") for row in markdown_table(SPEC, "## States")}
_exit = re.search(r'"Exit states" are ([^.]+)\.', SPEC)
assert _exit is not None, "the spec copy no longer defines the exit states"
SPEC_EXIT_STATES = set(names(_exit.group(1)))


def from_states(cell: str) -> set[str | None]:
    """The spec's from column: a list of states and "(no row)", or one of its two phrases."""
    if cell == "any non-exit state":
        return set(SPEC_STATES - SPEC_EXIT_STATES)
    if (m := re.fullmatch(r"any state except `([a-z_]+)`", cell)) is not None:
        return set(SPEC_STATES - {m.group(1)})
    rest = re.sub(r"`[a-z_]+`|\(no row\)|,|\s", "", cell)
    assert rest == "", f"unparsed from-states {cell!r}"
    return {*names(cell), *([None] if "(no row)" in cell else [])}


SPEC_OPERATIONS = {
    row["operation"].strip("`"): (from_states(row["from"]), row["to"].strip("`"),
                                  row["usual trigger"].replace("`", ""))
    for row in markdown_table(SPEC, "## Operations")
}
SPEC_TRANSITIONS: dict[tuple[str, str | None], str] = {
    (op, source): to for op, (sources, to, _) in SPEC_OPERATIONS.items() for source in sources
}


def value(state: State | None) -> str | None:
    return state.value if state else None


# ---- the copy and the table


def test_the_parser_reads_the_whole_spec() -> None:
    # Guards the parser itself: an empty or truncated read would make every check vacuous.
    assert len(SPEC_STATES) == 11 and SPEC_EXIT_STATES == {"kicked", "left_guild", "banned"}
    assert len(SPEC_OPERATIONS) == 14 and len(SPEC_TRANSITIONS) == 40


def test_states_and_exit_states_are_the_spec_s() -> None:
    assert {s.value for s in State} == SPEC_STATES
    assert {s.value for s in EXIT_STATES} == SPEC_EXIT_STATES


def test_operations_are_the_spec_s() -> None:
    assert {op.value for op in Operation} == set(SPEC_OPERATIONS)
    assert set(RULE_BY_OPERATION) == set(Operation)


@pytest.mark.parametrize("operation", sorted(SPEC_OPERATIONS))
def test_each_rule_is_the_spec_s_row(operation: str) -> None:
    sources, target, trigger = SPEC_OPERATIONS[operation]
    rule = RULE_BY_OPERATION[Operation(operation)]
    assert {value(s) for s in rule.sources} == sources
    assert rule.target.value == target
    assert rule.trigger == trigger


def test_transitions_are_exactly_the_spec_s_pairs() -> None:
    assert {(op.value, value(s)): to.value for (op, s), to in TRANSITIONS.items()} \
        == SPEC_TRANSITIONS


# ---- the guard, against the spec's pairs

ALL_PAIRS = list(itertools.product([op.value for op in Operation],
                                   [None, *(s.value for s in State)]))
FORBIDDEN = [pair for pair in ALL_PAIRS if pair not in SPEC_TRANSITIONS]


@pytest.mark.parametrize(("op", "source"), sorted(SPEC_TRANSITIONS, key=str), ids=str)
def test_the_guard_allows_each_spec_pair(op: str, source: str | None) -> None:
    state = State(source) if source else None
    assert target_state(Operation(op), state).value == SPEC_TRANSITIONS[(op, source)]
    assert Operation(op) in allowed_operations(state)


@pytest.mark.parametrize(("op", "source"), FORBIDDEN, ids=str)
def test_the_guard_refuses_every_other_pair_with_both_names(op: str,
                                                            source: str | None) -> None:
    state = State(source) if source else None
    with pytest.raises(TransitionNotAllowed) as info:
        target_state(Operation(op), state)
    assert info.value.operation == Operation(op) and info.value.current == state
    assert op in str(info.value)
    assert (source or "no record") in str(info.value)
    assert Operation(op) not in allowed_operations(state)


@pytest.mark.parametrize("state", [s for s in State if s != State.VERIFICATION_PENDING])
def test_manual_verification_only_from_pending(state: State) -> None:
    with pytest.raises(TransitionNotAllowed, match=r"allowed from: verification_pending$"):
        target_state(Operation.VERIFY, state)


# ---- paths through the table

# Written out by hand: the fewest steps from "no row", first by the order of the spec's rows.
SHORTEST = {
    State.JOINED: "join",
    State.ONBOARDING_IN_PROGRESS: "join start_onboarding",
    State.ONBOARDING_COMPLETED: "join complete_onboarding",
    State.ROLE_ELIGIBLE: "join complete_onboarding mark_role_eligible",
    State.RULES_ACCEPTED: "join complete_onboarding mark_role_eligible accept_rules",
    State.VERIFICATION_PENDING:
        "join complete_onboarding mark_role_eligible accept_rules request_verification",
    State.VERIFIED:
        "join complete_onboarding mark_role_eligible accept_rules request_verification verify",
    State.REJECTED_NOT_ELIGIBLE:
        "join complete_onboarding mark_role_eligible accept_rules request_verification reject",
    State.KICKED: "join kick",
    State.LEFT_GUILD: "join leave",
    State.BANNED: "join ban",
}


@pytest.mark.parametrize("target", list(State))
def test_shortest_path_from_a_new_member(target: State) -> None:
    steps = shortest_path(target)
    assert " ".join(step.operation.value for step in steps) == SHORTEST[target]
    state: State | None = None
    for step in steps:  # a chain of steps the guard allows, ending at the target
        assert step.from_state == state
        assert step.to_state == target_state(step.operation, state)
        state = step.to_state
    assert state == target


@pytest.mark.parametrize(("start", "target", "expected"), [
    (State.VERIFIED, State.VERIFIED, ""),
    (State.REJECTED_NOT_ELIGIBLE, State.VERIFIED, "reopen verify"),
    (State.VERIFIED, State.VERIFICATION_PENDING, "reverify"),
    (State.BANNED, State.JOINED, "unban join"),
    (State.KICKED, State.ROLE_ELIGIBLE, "join complete_onboarding mark_role_eligible"),
    (State.ONBOARDING_IN_PROGRESS, State.BANNED, "ban"),
])
def test_shortest_path_from_a_given_state(start: State, target: State, expected: str) -> None:
    assert " ".join(s.operation.value for s in shortest_path(target, start)) == expected


def test_the_onboarding_path_walks_the_table_forward() -> None:
    assert ONBOARDING_PATH[0] == State.JOINED and ONBOARDING_PATH[-1] == State.VERIFIED
    for here, there in itertools.pairwise(ONBOARDING_PATH):
        assert any(TRANSITIONS.get((op, here)) == there for op in Operation), (here, there)
    assert dict(ONBOARDING_TARGET) == {
        Operation.START_ONBOARDING: State.ONBOARDING_IN_PROGRESS,
        Operation.COMPLETE_ONBOARDING: State.ONBOARDING_COMPLETED,
        Operation.MARK_ROLE_ELIGIBLE: State.ROLE_ELIGIBLE,
        Operation.ACCEPT_RULES: State.RULES_ACCEPTED,
    }


# ---- commands


def test_command_rejects_bad_ids_and_keys() -> None:
    base = dict(guild_id=1, user_id=2, operation=Operation.JOIN, source=Source.BOT,
                idempotency_key="k")
    for bad in ({"guild_id": 0}, {"user_id": -5}, {"user_id": 2**63}, {"idempotency_key": ""},
                {"idempotency_key": "x" * 201}, {"reason": "r" * 1001}, {"actor_id": True},
                {"expected_version": -1}):
        with pytest.raises(InvalidInput):
            TransitionCommand(**{**base, **bad})  # type: ignore[arg-type]


def test_command_payload_round_trips() -> None:
    cmd = TransitionCommand(guild_id=1, user_id=2, operation=Operation.VERIFY,
                            source=Source.API, idempotency_key="k", actor_id=3, reason="r",
                            expected_state=State.VERIFICATION_PENDING, expected_version=6)
    assert TransitionCommand.from_payload(cmd.to_payload()) == cmd
    replay = cmd.for_replay(actor_id=4, correlation_id="c")
    assert (replay.source, replay.actor_id, replay.idempotency_key, replay.strict) == \
        (Source.REPLAY, 4, "k", False)
