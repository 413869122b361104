"""The stack trace a dead letter keeps: the whole traceback, redacted, at most 8,192
characters, its end kept when cut (the innermost frames and the error)."""

from __future__ import annotations

import re
import traceback

from domain.deadletters import MAX_STACK_TRACE, stack_trace
from domain.redaction import isolated_secrets, register_secret

SECRET = "s3cr3t-database-password"


def _raised(message: str, causes: int = 0) -> BaseException:
    error: BaseException | None = None
    for step in range(causes + 1):
        try:
            raise RuntimeError(message if step == causes else f"cause {step}") from error
        except RuntimeError as exc:
            error = exc
    assert error is not None
    return error


def test_a_short_trace_is_kept_whole_with_its_frames() -> None:
    error = _raised("boom")
    kept = stack_trace(error)
    assert kept == "".join(traceback.format_exception(error))
    assert kept.startswith("Traceback (most recent call last):")
    assert "in _raised" in kept and kept.endswith("RuntimeError: boom\n")


def test_secrets_and_credentials_in_the_trace_are_redacted() -> None:
    with isolated_secrets():
        register_secret(SECRET)
        kept = stack_trace(_raised(f"could not connect to postgresql://app:{SECRET}@db/x "
                                   "with token=abcdef123456"))
    assert SECRET not in kept and "abcdef123456" not in kept
    assert "[redacted]" in kept


def test_a_long_trace_keeps_its_end_and_says_how_much_was_cut() -> None:
    error = _raised("the last straw", causes=80)
    whole = "".join(traceback.format_exception(error))
    assert len(whole) > 2 * MAX_STACK_TRACE
    kept = stack_trace(error)
    assert len(kept) <= MAX_STACK_TRACE
    head = re.match(r"… \(truncated: (\d+) characters of the oldest frames left out\)\n",
                    kept)
    assert head is not None
    tail = kept[head.end():]
    assert whole.endswith(tail) and tail.endswith("RuntimeError: the last straw\n")
    assert int(head.group(1)) == len(whole) - len(tail)
