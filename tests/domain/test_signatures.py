"""Dead-letter signatures: the same failure of the same operation groups together."""

from __future__ import annotations

import itertools

import pytest

from domain.entries import error_type_of, signature_of, signature_parts
from domain.errors import DatabaseUnavailable, DomainError
from domain.lifecycle import Operation, TransitionNotAllowed
from domain.vocabulary import ReasonCode, State


class OddError(ValueError):
    pass


@pytest.mark.parametrize(("operation", "reason", "error", "expected"), [
    (Operation.VERIFY, ReasonCode.RETRIES_EXHAUSTED, DatabaseUnavailable("down"),
     "verify/retries_exhausted/DatabaseUnavailable"),
    (Operation.ACCEPT_RULES, ReasonCode.NOT_APPLICABLE,
     TransitionNotAllowed(Operation.ACCEPT_RULES, State.JOINED),
     "accept_rules/not_applicable/TransitionNotAllowed"),
    (Operation.JOIN, ReasonCode.UNEXPECTED_ERROR, OddError("x"),
     "join/unexpected_error/OddError"),  # a subclass by its own name, without its module
])
def test_signature(operation: Operation, reason: ReasonCode, error: BaseException,
                   expected: str) -> None:
    assert signature_of(operation.value, reason.value, error_type_of(error)) == expected


def test_the_message_does_not_split_a_group() -> None:
    first = signature_of("verify", "unexpected_error", error_type_of(DomainError("member 1")))
    second = signature_of("verify", "unexpected_error", error_type_of(DomainError("member 2")))
    assert first == second


def test_every_operation_reason_and_type_gets_its_own_group_and_reads_back() -> None:
    types = ["DatabaseUnavailable", "TransitionNotAllowed", "OddError"]
    combos = list(itertools.product(Operation, ReasonCode, types))
    signatures = {signature_of(op.value, reason.value, t) for op, reason, t in combos}
    assert len(signatures) == len(combos)
    for op, reason, t in combos:
        assert signature_parts(signature_of(op.value, reason.value, t)) == \
            (op.value, reason.value)
