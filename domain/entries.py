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
    # The original failure's traceback, redacted and bounded (domain/deadletters.py); None
    # for entries recorded before it was kept, and in pages (only one entry's read has it).
    stack_trace: str | None = None

    @classmethod
    def from_mapping(cls, data: Any) -> DeadLetterEntry:
        """From anything that maps column names to values (a database row)."""
        return cls(**{f.name: data[f.name] for f in fields(cls)})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RemediationRecord:
    """One audit row: a staff action on a dead letter or a delivery (`target_kind`,
    `target_id`); `dead_letter_id` is the dead letter's id, None for a delivery."""

    id: int
    target_kind: str
    target_id: int
    dead_letter_id: int | None
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
    def from_mapping(cls, data: Any) -> RemediationRecord:
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
    stale: int = 0  # skipped: their member changed since they were recorded (not forced)


@dataclass(frozen=True)
class BulkRetryResult:
    """What `retry_all` did: `matched` unresolved entries matched the filters; up to the
    per-request bound of them were replayed (`remaining` were left for another run)."""

    matched: int
    resolved: int
    failed: int
    skipped: int  # being retried by someone else, or acted on meanwhile
    stale: int  # not replayed: their member changed since they were recorded (not forced)
    remaining: int = 0
    dry_run: bool = False


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
    total: int = 0  # every entry of the guild, whatever its status

@dataclass(frozen=True)
class DeadLetterFilter:
    """Validated filters of a dead-letter page (values as the database stores them)."""

    statuses: tuple[str, ...] = ()  # any of these; () = every status
    operation: str | None = None
    source: str | None = None
    signature: str | None = None
    user_id: int | None = None
    id_prefix: str | None = None  # autocomplete: ids that start with these digits
    oldest_first: bool = False  # pages in id order (oldest first) instead of newest first


@dataclass(frozen=True)
class AuditFilter:
    """Validated filters of an audit page."""

    target_kind: str | None = None
    target_id: int | None = None
    dead_letter_id: int | None = None
    actor_id: int | None = None


@dataclass(frozen=True)
class OutcomeWrite:
    """One remediation outcome, written in one statement: the entry's status compare-and-set
    (on `version`), its audit row and its mirror row."""

    entry_id: int
    guild_id: int
    version: int  # the entry's version as the caller read or claimed it
    status: str  # the status it goes to
    status_before: str  # what the audit row records as the status it left
    actor_id: int
    source: str
    action: str  # retry, resolve, dismiss, reopen
    outcome: str  # resolved, failed, dismissed, reopened, ...
    note: str | None
    closes: bool  # resolved or dismissed: records who and the note on the entry
    counts: bool  # adds one to remediation_count (every action but reopen)
    error_type: str | None  # a failed replay's newest error, else None
    error_message: str | None
    correlation_id: str
    mirror: dict[str, Any]  # the mirror record's facts


def signature_of(operation: str, reason_code: str, error_type: str) -> str:
    """Stable grouping key: the same failure of the same operation groups together."""
    return f"{operation}/{reason_code}/{error_type}"


def signature_parts(signature: str) -> tuple[str, str]:
    """(operation, reason code) of a signature_of() signature: `operation/reason/error`."""
    operation, _, rest = signature.partition("/")
    return operation, rest.partition("/")[0]


def error_type_of(error: BaseException) -> str:
    return type(error).__name__
