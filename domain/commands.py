"""What callers ask for and what they get back."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from domain.errors import InvalidInput
from domain.lifecycle import Operation, Source, State
from domain.redaction import scrub
from domain.vocabulary import state_value

MAX_SNOWFLAKE = 2**63 - 1
MAX_KEY_LENGTH = 200
MAX_REASON_LENGTH = 1000


# Correlation ids tie log lines and rows of one request together; they are not secrets.
# uuid4() asks the kernel for 16 bytes each time, a syscall that cost a tenth of a request's
# client CPU in the contention benchmark; 128 bits from a generator seeded from the kernel
# once per process (and again in a forked child) are as unique.
_ids = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


# The correlation id of the request being served (the HTTP API sets it from X-Correlation-ID):
# every command and remediation record it causes carries it.
_request_correlation: ContextVar[str | None] = ContextVar("lifeline_correlation_id",
                                                           default=None)


def new_correlation_id() -> str:
    """The current request's correlation id, else 32 new lowercase hex digits (as
    uuid4().hex gives)."""
    return _request_correlation.get() or f"{_ids.getrandbits(128):032x}"


@contextmanager
def correlation_scope(correlation_id: str) -> Iterator[None]:
    """Everything done inside carries `correlation_id` (one request's work)."""
    token = _request_correlation.set(correlation_id)
    try:
        yield
    finally:
        _request_correlation.reset(token)


def check_snowflake(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_SNOWFLAKE:
        raise InvalidInput(f"{name} must be a Discord id between 1 and {MAX_SNOWFLAKE}")
    return value


@dataclass(frozen=True)
class TransitionCommand:
    guild_id: int
    user_id: int
    operation: Operation
    source: Source
    idempotency_key: str
    actor_id: int | None = None
    reason: str | None = None
    correlation_id: str = field(default_factory=new_correlation_id)
    expected_state: State | None = None
    expected_version: int | None = None

    def __post_init__(self) -> None:
        check_snowflake("guild_id", self.guild_id)
        check_snowflake("user_id", self.user_id)
        if self.actor_id is not None:
            check_snowflake("actor_id", self.actor_id)
        if not self.idempotency_key or len(self.idempotency_key) > MAX_KEY_LENGTH:
            raise InvalidInput(f"idempotency_key must be 1..{MAX_KEY_LENGTH} characters")
        if self.reason is not None and len(self.reason) > MAX_REASON_LENGTH:
            raise InvalidInput(f"reason must be at most {MAX_REASON_LENGTH} characters")
        if self.expected_version is not None and self.expected_version < 0:
            raise InvalidInput("expected_version must be >= 0")
        if self.reason:
            object.__setattr__(self, "reason", scrub(self.reason))

    @property
    def strict(self) -> bool:
        return self.expected_state is not None or self.expected_version is not None

    def to_payload(self) -> dict[str, Any]:
        """The whole command as JSON, enough to replay it."""
        data = asdict(self)
        data["operation"] = self.operation.value
        data["source"] = self.source.value
        data["expected_state"] = state_value(self.expected_state)
        return data

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> TransitionCommand:
        return cls(
            guild_id=int(data["guild_id"]),
            user_id=int(data["user_id"]),
            operation=Operation(data["operation"]),
            source=Source(data["source"]),
            idempotency_key=str(data["idempotency_key"]),
            actor_id=data.get("actor_id"),
            reason=data.get("reason"),
            correlation_id=data.get("correlation_id") or new_correlation_id(),
            expected_state=State(data["expected_state"]) if data.get("expected_state") else None,
            expected_version=data.get("expected_version"),
        )

    def for_replay(self, actor_id: int, correlation_id: str) -> TransitionCommand:
        """A replay reads afresh: no strict expectation, same idempotency key."""
        return replace(self, source=Source.REPLAY, actor_id=actor_id,
                       correlation_id=correlation_id, expected_state=None,
                       expected_version=None)


@dataclass(frozen=True)
class MemberSnapshot:
    guild_id: int
    user_id: int
    state: State
    version: int
    updated_at: datetime


@dataclass(frozen=True)
class TransitionResult:
    member: MemberSnapshot
    transition_id: int | None  # None: already there (nothing written)
    applied: bool
    operation: Operation
    from_state: State | None
    attempts: int = 1
    conflicts: int = 0
    # Another writer moved the member to the state this one wanted first (lifecycle.md,
    # "How a transition is written", 6): the intent is achieved, nothing was written.
    already_there: bool = False


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    version: int
    operation: Operation
    from_state: State | None
    to_state: State
    source: Source
    actor_id: int | None
    reason: str | None
    idempotency_key: str
    correlation_id: str
    created_at: datetime
