"""What the stores hand the services: reads and outcomes as plain domain values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.commands import TransitionCommand
from domain.vocabulary import DeliveryStatus, MirrorLevel, Operation, OutboxKind, State


@dataclass(frozen=True, slots=True)
class PriorTransition:
    """The ledger row an idempotency key already produced for the member."""

    transition_id: int
    operation: Operation
    from_state: State | None
    to_state: State
    version: int
    created_at: datetime


@dataclass(slots=True)
class Observed:
    """One read of a member before a write: its state and version (None, 0 for no record),
    the ledger row of the command's key if it was used before, and what the guild's
    settings ask of a write (mirror its transitions; sync the verified role)."""

    state: State | None
    version: int
    updated_at: datetime | None
    prior: PriorTransition | None = None
    # A side effect's CTE is included in the write only when the read said so (its own
    # WHERE still decides at the write): an INSERT CTE that inserts nothing still costs the
    # server its set-up, which grew with concurrency.
    mirror_on: bool = False
    role_sync_on: bool = False
    # The guild's eligibility role (batch reads only: the member sync needs it).
    eligibility_role_id: int | None = None


@dataclass(slots=True)
class PlannedWrite:
    """One compare-and-set the guard allowed: `cmd` moves the member from `observed` to
    `to_state`, with the ledger row and the outbox rows that implies."""

    cmd: TransitionCommand
    observed: Observed
    to_state: State
    role_action: str | None  # "add" / "remove" the verified role, or None
    mirror: dict[str, Any] | None  # the mirror record's facts, or None for no mirror row


@dataclass(slots=True)
class Written:
    transition_id: int
    version: int
    updated_at: datetime


class KeyTaken:
    """A write refused because another writer used the same idempotency key for the member
    between the read and the write: read again, and answer as a repeat. `error` is the
    database's refusal, for when the read finds no such row after all."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error

WriteOutcome = Written | KeyTaken | None  # None: the compare-and-set changed nothing


@dataclass(frozen=True)
class GuildConfig:
    guild_id: int
    log_channel_id: int | None
    staff_role_ids: tuple[int, ...]
    verified_role_id: int | None
    eligibility_role_id: int | None
    mirror_level: MirrorLevel


# ---- the outbox ------------------------------------------------------------------------

@dataclass(frozen=True)
class Claimed:
    """An outbox row claimed by a worker (`attempts` counts this attempt; `installation` is
    the identity of the database the row lives in, part of its message's nonce)."""

    id: int
    guild_id: int
    kind: OutboxKind
    channel_id: int | None
    lane: str
    payload: dict[str, Any]
    attempts: int
    installation: str = ""


@dataclass(frozen=True)
class Attempt:
    """How one delivery of a batch ended, as the worker records it."""

    outcome: DeliveryStatus  # DELIVERED, RETRY_SCHEDULED, FAILED or DEAD_LETTERED
    started_at: datetime
    duration_ms: int
    http_status: int | None
    message_id: int | None  # the Discord message the delivery made
    error: str | None  # redacted summary
    retryable: bool
    retry_in: float  # seconds until the next attempt (for RETRY_SCHEDULED)
    # The destination itself refused (a deleted channel, a lost permission): the lane's later
    # rows would fail the same way, so they are dead-lettered too instead of blocking it.
    close_lane: bool = False
    cause: str | None = None  # why it failed, as staff can act on it (DeliveryCause)
    discord_code: int | None = None  # Discord's JSON error code


# ---- deliveries staff can see and retry (domain/deliveries.py) ----------------------------

@dataclass(frozen=True)
class DeliveryAttempt:
    attempt: int
    started_at: datetime
    duration_ms: int
    outcome: str | None  # the status this attempt ended in
    retryable: bool
    http_status: int | None
    discord_code: int | None
    error: str | None  # redacted
    worker: str


@dataclass(frozen=True)
class DeliveryTimeline:
    """A delivery's newest attempts, oldest first; `earlier` when older ones exist that are
    not in `attempts` (a line refused for days gains hundreds)."""

    attempts: list[DeliveryAttempt]
    earlier: bool


@dataclass(frozen=True)
class Delivery:
    id: int
    guild_id: int
    kind: OutboxKind
    status: DeliveryStatus
    channel_id: int | None
    # Role changes: the member, the role and add/remove; mirror lines: the record's kind.
    user_id: int | None
    role_id: int | None
    action: str | None
    record: str | None
    attempts: int
    cause: str | None
    discord_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class DeliveryPage:
    items: list[Delivery]
    next_cursor: str | None


@dataclass(frozen=True)
class DeliverySummary:
    """A guild's failed deliveries at a glance: how many, and the newest one's cause."""

    failed: int
    pending: int
    newest_cause: str | None
    newest_channel_id: int | None
    newest_error: str | None


@dataclass(frozen=True)
class RetryResult:
    """What a retry did: `matched` failed deliveries, `requeued` to be delivered again,
    `stale` role changes that no longer apply (skipped), `waiting` log lines kept failed
    because the guild has no log channel, `more` when another call has rows left."""

    matched: int
    requeued: int
    stale: int
    waiting: int
    more: bool
    requeued_ids: list[int]
    stale_ids: list[int]


@dataclass(frozen=True)
class ConsoleSessionRow:
    """A live console session as stored (its key is the cookie value's hash)."""

    user_id: int
    username: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class BulkJobRow:
    """A console bulk retry as stored (its progress is written while it runs)."""

    id: int
    guild_id: int
    actor_id: int
    kind: str
    filters: dict[str, Any]
    force: bool
    status: str
    total: int
    done: int
    resolved: int
    failed: int
    skipped: int
    stale: int
    remaining: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_mapping(cls, data: Any) -> BulkJobRow:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})
