"""Read models of the dead-letter store and its audit trail."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class DeadLetterEntry:
    id: int
    guild_id: int
    user_id: int
    operation: str
    from_state: str | None
    to_state: str | None
    observed_state: str | None
    observed_version: int | None
    reason_code: str
    error_type: str
    error_message: str
    attempts: int
    source: str
    actor_id: int | None
    idempotency_key: str
    correlation_id: str
    payload: dict[str, Any]
    signature: str
    status: str
    remediation_count: int
    last_remediated_at: datetime | None
    resolved_by: int | None
    resolution_note: str | None
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def from_row(cls, row: Any) -> DeadLetterEntry:
        data = row._mapping
        return cls(**{f.name: data[f.name] for f in fields(cls)})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RemediationRecord:
    id: int
    dead_letter_id: int
    actor_id: int
    source: str
    action: str
    outcome: str
    status_before: str
    status_after: str
    note: str | None
    error_message: str | None
    correlation_id: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> RemediationRecord:
        data = row._mapping
        return cls(**{f.name: data[f.name] for f in fields(cls)})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Page:
    items: list[DeadLetterEntry]
    next_cursor: str | None
    total: int
    # False when the count stopped at list()'s count_limit: `total` is then count_limit + 1,
    # meaning "more than count_limit".
    total_exact: bool = True


@dataclass(frozen=True)
class RetryOutcome:
    entry: DeadLetterEntry
    resolved: bool
    detail: str
    already_applied: bool = False


@dataclass(frozen=True)
class GroupRetryResult:
    signature: str
    total: int
    resolved: int
    failed: int
    skipped: int


@dataclass(frozen=True)
class SignatureCount:
    signature: str
    operation: str
    reason_code: str
    open: int
    total: int


@dataclass(frozen=True)
class Stats:
    by_status: dict[str, int]
    by_signature: list[SignatureCount]
    oldest_open_age_seconds: float | None
    retention_days: int

