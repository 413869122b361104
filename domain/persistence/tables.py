"""The schema. alembic migrations create it; queries use these tables through Core."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from domain.vocabulary import (
    DeadLetterStatus,
    DeliveryStatus,
    MirrorLevel,
    Operation,
    OutboxKind,
    ReasonCode,
    Source,
    State,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _pg_enum(e: type[enum.Enum], name: str) -> Enum:
    return Enum(e, name=name, values_callable=lambda cls: [m.value for m in cls],
                validate_strings=True)


STATE_ENUM = _pg_enum(State, "member_state")
OPERATION_ENUM = _pg_enum(Operation, "member_operation")
SOURCE_ENUM = _pg_enum(Source, "transition_source")
DL_STATUS_ENUM = _pg_enum(DeadLetterStatus, "dead_letter_status")
REASON_ENUM = _pg_enum(ReasonCode, "dead_letter_reason")
MIRROR_ENUM = _pg_enum(MirrorLevel, "mirror_level")
DELIVERY_ENUM = _pg_enum(DeliveryStatus, "delivery_status")
OUTBOX_KIND_ENUM = _pg_enum(OutboxKind, "outbox_kind")

_now = func.now()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Member(Base):
    __tablename__ = "members"
    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    state: Mapped[State] = mapped_column(STATE_ENUM)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    __table_args__ = (CheckConstraint("version >= 1", name="version_positive"),)


class MemberTransition(Base):
    """The ledger: one row per accepted transition, version = the member's version after it."""

    __tablename__ = "member_transitions"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer)
    operation: Mapped[Operation] = mapped_column(OPERATION_ENUM)
    from_state: Mapped[State | None] = mapped_column(STATE_ENUM, nullable=True)
    to_state: Mapped[State] = mapped_column(STATE_ENUM)
    source: Mapped[Source] = mapped_column(SOURCE_ENUM)
    actor_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    idempotency_key: Mapped[str] = mapped_column(Text)
    correlation_id: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    __table_args__ = (
        UniqueConstraint("guild_id", "user_id", "version"),
        UniqueConstraint("guild_id", "user_id", "idempotency_key"),
    )


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int] = mapped_column(BigInteger)
    operation: Mapped[Operation] = mapped_column(OPERATION_ENUM)
    from_state: Mapped[State | None] = mapped_column(STATE_ENUM, nullable=True)
    to_state: Mapped[State | None] = mapped_column(STATE_ENUM, nullable=True)
    observed_state: Mapped[State | None] = mapped_column(STATE_ENUM, nullable=True)
    observed_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason_code: Mapped[ReasonCode] = mapped_column(REASON_ENUM)
    error_type: Mapped[str] = mapped_column(Text)
    error_message: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    source: Mapped[Source] = mapped_column(SOURCE_ENUM)
    actor_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    idempotency_key: Mapped[str] = mapped_column(Text)
    correlation_id: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    signature: Mapped[str] = mapped_column(Text)
    status: Mapped[DeadLetterStatus] = mapped_column(DL_STATUS_ENUM)
    remediation_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_remediated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                                nullable=True)
    resolved_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    resolution_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The original failure's stack trace, redacted and at most 8 KiB (migration 0003).
    stack_trace: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    __table_args__ = (
        CheckConstraint("char_length(error_message) <= 2000", name="error_message_length"),
        CheckConstraint("char_length(stack_trace) <= 8192", name="stack_trace_length"),
        # Keyset pages of one guild, newest first, for the statuses staff work on.
        Index("ix_dead_letters_guild_status_id", "guild_id", "status", text("id DESC")),
        Index("ix_dead_letters_guild_id", "guild_id", text("id DESC")),
        Index("ix_dead_letters_guild_signature", "guild_id", "signature", "status",
              text("id DESC")),
        Index("ix_dead_letters_guild_user", "guild_id", "user_id", text("id DESC")),
        Index("ix_dead_letters_retention", "updated_at",
              postgresql_where=text("status IN ('resolved', 'dismissed')")),
    )


class DeadLetterCount(Base):
    """Entries of `dead_letters` per (guild, signature, status), kept exact by statement-level
    triggers on `dead_letters` (migration 0002) in the writer's transaction. Each backend
    writes to its own `slot` (pg_backend_pid() % 16): a count is the sum over the slots, one
    slot alone may be negative, and keys whose entries are gone stay at 0."""

    __tablename__ = "dead_letter_counts"
    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    signature: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[DeadLetterStatus] = mapped_column(DL_STATUS_ENUM, primary_key=True)
    slot: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class AuditTarget(enum.StrEnum):
    DEAD_LETTER = "dead_letter"
    DELIVERY = "delivery"


class RemediationAction(Base):
    """The audit trail: staff actions on a dead letter or a delivery (`target_kind`,
    `target_id`; `dead_letter_id` is set for a dead letter). Kept when retention purges
    what it points at (and when staff delete a dead letter)."""

    __tablename__ = "remediation_actions"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    target_kind: Mapped[str] = mapped_column(Text, server_default=AuditTarget.DEAD_LETTER.value)
    target_id: Mapped[int] = mapped_column(BigInteger)
    dead_letter_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    actor_id: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[Source] = mapped_column(SOURCE_ENUM)
    action: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text)
    # The target's status before and after: a dead letter's or a delivery's.
    status_before: Mapped[str] = mapped_column(Text)
    status_after: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    correlation_id: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    __table_args__ = (
        CheckConstraint("target_kind IN ('dead_letter', 'delivery')", name="target_kind"),
        Index("ix_remediation_actions_entry", "guild_id", "dead_letter_id", "id"),
        Index("ix_remediation_actions_target", "guild_id", "target_kind", "target_id",
              text("id DESC")),
        Index("ix_remediation_actions_actor", "guild_id", "actor_id", text("id DESC")),
        Index("ix_remediation_actions_guild", "guild_id", text("id DESC")),
    )


class Installation(Base):
    """One row: this database's random identity, part of every message nonce (migration
    0003), so a new database whose ids start again never repeats a recent nonce."""

    __tablename__ = "installation"
    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default=text("1"))
    identity: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("identity ~ '^[0-9a-z]{6}$'", name="identity"),
    )


class GuildSettings(Base):
    __tablename__ = "guild_settings"
    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    log_channel_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    staff_role_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger),
                                                      server_default=text("'{}'"))
    verified_role_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    eligibility_role_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    mirror_level: Mapped[MirrorLevel] = mapped_column(
        MIRROR_ENUM, server_default=MirrorLevel.DEAD_LETTERS.value)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)


class OutboxRow(Base):
    """Outbound Discord writes (log-channel mirror, role sync), delivered by the worker."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[OutboxKind] = mapped_column(OUTBOX_KIND_ENUM)
    channel_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Rows of one lane are delivered in id order: `channel:<id>` for the mirror,
    # `member:<guild>:<user>` for role sync.
    lane: Mapped[str] = mapped_column(Text)
    # The head row id of the message a row was claimed into; a takeover after a crash
    # resends exactly that batch with the same nonce, so Discord de-duplicates it.
    batch_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[DeliveryStatus] = mapped_column(
        DELIVERY_ENUM, server_default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                      server_default=_now)
    locked_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                          nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    discord_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Why the last attempt failed, as a cause staff can act on (domain/deliveries.py
    # DeliveryCause), and Discord's error code.
    cause: Mapped[str | None] = mapped_column(Text, nullable=True)
    discord_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # A mirror row takes its id under its lane's lock, held to commit (the
    # outbox_take_position trigger, migration 0003): a lane's ids are in commit order.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                          nullable=True)
    __table_args__ = (
        Index("ix_outbox_due", "next_attempt_at",
              postgresql_where=text("status IN ('pending', 'retry_scheduled', 'delivering')")),
        Index("ix_outbox_lane_open", "lane", "id",
              postgresql_where=text("status IN ('pending', 'retry_scheduled', 'delivering')")),
        Index("ix_outbox_batch", "batch_id", postgresql_where=text("status = 'delivering'")),
        Index("ix_outbox_delivered", "delivered_at",
              postgresql_where=text("status = 'delivered'")),
        Index("ix_outbox_guild_status", "guild_id", "status", text("id DESC")),
        Index("ix_outbox_guild_id", "guild_id", text("id DESC")),
    )


class OutboxAttempt(Base):
    __tablename__ = "outbox_attempts"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("outbox.id",
                                                                  ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(SmallInteger)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int] = mapped_column(Integer)
    http_status: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    discord_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The delivery status this attempt ended in.
    outcome: Mapped[str | None] = mapped_column(Text, nullable=True)
    retryable: Mapped[bool]
    error_summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker: Mapped[str] = mapped_column(Text)
    __table_args__ = (Index("ix_outbox_attempts_outbox", "outbox_id", "id"),)  # 0007


class ConsoleSession(Base):
    """A logged-in browser of the staff web console (migration 0004): keyed by the SHA-256 of
    the cookie's random value (the table never holds what a browser presents), with its own
    CSRF token and an expiry."""

    __tablename__ = "console_sessions"
    id_hash: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    username: Mapped[str] = mapped_column(Text)
    csrf_token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        CheckConstraint("id_hash ~ '^[0-9a-f]{64}$'", name="id_hash"),
        Index("ix_console_sessions_expires", "expires_at"),
        Index("ix_console_sessions_user", "user_id"),
    )


class BulkJob(Base):
    """A console bulk retry and its progress (migration 0005), written by the process that
    runs it, read by any page."""

    __tablename__ = "bulk_jobs"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    actor_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(Text)
    filters: Mapped[dict[str, Any]] = mapped_column(JSONB)
    force: Mapped[bool]
    status: Mapped[str] = mapped_column(Text, server_default="running")
    total: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    done: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    resolved: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    failed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    skipped: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    stale: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    remaining: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                         nullable=True)
    __table_args__ = (
        CheckConstraint("status IN ('running', 'done', 'failed')", name="status"),
        CheckConstraint("kind IN ('retry_all')", name="kind"),
        Index("ix_bulk_jobs_guild", "guild_id", text("id DESC")),
    )


class DailyGuildStats(Base):
    """The console overview's daily history (migration 0006), kept past retention."""

    __tablename__ = "daily_guild_stats"
    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    new_entries: Mapped[int] = mapped_column(Integer)
    resolved_entries: Mapped[int] = mapped_column(Integer)
    open_entries: Mapped[int] = mapped_column(Integer)


class DailySignatureOpen(Base):
    __tablename__ = "daily_signature_open"
    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    signature: Mapped[str] = mapped_column(Text, primary_key=True)
    open_entries: Mapped[int] = mapped_column(Integer)


class HourlyTransitions(Base):
    __tablename__ = "hourly_transitions"
    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    source: Mapped[str] = mapped_column(Text, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class SnapshotWatermark(Base):
    __tablename__ = "snapshot_watermarks"
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger)


members = Member.__table__
transitions = MemberTransition.__table__
dead_letters = DeadLetter.__table__
dead_letter_counts = DeadLetterCount.__table__
remediation_actions = RemediationAction.__table__
guild_settings = GuildSettings.__table__
outbox = OutboxRow.__table__
outbox_attempts = OutboxAttempt.__table__
installation = Installation.__table__
console_sessions = ConsoleSession.__table__
bulk_jobs = BulkJob.__table__
