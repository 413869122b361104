"""Secrets never reach logs, the database or Discord (domain/redaction.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from domain.commands import TransitionCommand
from domain.lifecycle import Operation, Source
from domain.redaction import (
    MAX_ERROR_LENGTH,
    RedactingFilter,
    isolated_secrets,
    redact,
    register_secret,
    scrub,
)

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.abcdefghijklmnopqrstuvwxyz0123"


@pytest.fixture(autouse=True)
def no_registered_secrets() -> Iterator[None]:
    """Registered secrets are process-wide: each test starts with none and leaves none."""
    with isolated_secrets():
        yield


REDACT = [
    # text, what redact() makes of it
    (f"login with {TOKEN} failed", "login with [redacted] failed"),
    ("Authorization: Bearer abcdefghijkl", "Authorization: Bearer [redacted]"),
    ("header Bot abcdefgh.ijkl", "header Bot [redacted]"),
    ("Bearer short", "Bearer short"),  # under 8 characters: not a credential
    ("password=hunter2&user=x", "password=[redacted]&user=x"),
    ("PWD=a passwd=b token=c secret=d api_key=e",
     "PWD=[redacted] passwd=[redacted] token=[redacted] secret=[redacted] api_key=[redacted]"),
    ("postgresql://lifeline:hunter2@db:5432/x", "postgresql://lifeline:[redacted]@db:5432/x"),
    ("redis://:hunter2@cache", "redis://:[redacted]@cache"),
    ("postgresql://lifeline@db/x and https://example.com/a?b=c",
     "postgresql://lifeline@db/x and https://example.com/a?b=c"),
    ("member 123 refused: 'verify' is not allowed from state joined",
     "member 123 refused: 'verify' is not allowed from state joined"),
]


@pytest.mark.parametrize(("text", "expected"), REDACT)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_registered_secrets_are_redacted_longest_first() -> None:
    register_secret("s3cr3t")
    register_secret("s3cr3t-api-token")
    assert redact("api s3cr3t-api-token, db s3cr3t") == "api [redacted], db [redacted]"
    assert scrub("api s3cr3t-api-token, db s3cr3t") == "api [redacted], db [redacted]"


@pytest.mark.parametrize("value", [None, "", "abc"])
def test_empty_and_short_secrets_are_not_registered(value: str | None) -> None:
    register_secret(value)
    assert redact("abc abcd") == "abc abcd"


@pytest.mark.parametrize(("length", "limit"), [(5000, MAX_ERROR_LENGTH), (11, 10), (50, 10)])
def test_redact_cuts_long_text_to_the_limit(length: int, limit: int) -> None:
    out = redact("x" * length, limit=limit)
    assert len(out) == limit and out.endswith("…")


def test_redact_keeps_text_at_the_limit_whole() -> None:
    assert redact("x" * MAX_ERROR_LENGTH) == "x" * MAX_ERROR_LENGTH


def test_scrub_removes_credentials_and_keeps_the_rest_as_written() -> None:
    register_secret("configured-secret")
    text = (f"note: {TOKEN} Bearer abcdefghijkl configured-secret "
            "password=hunter2 postgresql://u:pw@db " + "y" * 3000)
    assert scrub(text) == ("note: [redacted] Bearer [redacted] [redacted] "
                           "password=hunter2 postgresql://u:pw@db " + "y" * 3000)


def test_command_reasons_are_scrubbed() -> None:
    register_secret("configured-secret")
    cmd = TransitionCommand(guild_id=1, user_id=2, operation=Operation.VERIFY,
                            source=Source.STAFF, idempotency_key="k",
                            reason=f"checked configured-secret and {TOKEN}")
    assert cmd.reason == "checked [redacted] and [redacted]"


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("t", logging.WARNING, __file__, 1, msg, args or None, None)


def test_the_log_filter_redacts_the_formatted_message() -> None:
    record = _record("retrying with %s after %d tries", f"Bot {TOKEN}", 3)
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == "retrying with Bot [redacted] after 3 tries"
    assert record.args is None


def test_the_log_filter_leaves_clean_and_broken_records_alone() -> None:
    clean = _record("joined %s", "guild")
    broken = _record("%d members", "many")
    for record in (clean, broken):
        msg, args = record.msg, record.args
        assert RedactingFilter().filter(record) is True
        assert (record.msg, record.args) == (msg, args)


def test_the_log_filter_does_not_cut_long_messages() -> None:
    record = _record("z" * 10_000)
    RedactingFilter().filter(record)
    assert record.getMessage() == "z" * 10_000
