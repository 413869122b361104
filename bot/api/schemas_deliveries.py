"""The bodies and answers of /api/v1/guilds/{guild_id}/deliveries."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from bot.api.schemas import ActorBody, SnowflakeOut
from domain.deliveries import delivery_ref, describe
from domain.records import Delivery, DeliveryAttempt, RetryResult
from domain.vocabulary import DeliveryStatus, OutboxKind


class DeliveryOut(BaseModel):
    id: int = Field(description="the outbox row id; staff read it as `D<id>`")
    ref: str = Field(description="`D<id>`, as Discord and the CLI show it")
    guild_id: SnowflakeOut
    kind: OutboxKind
    status: DeliveryStatus
    channel_id: SnowflakeOut | None = Field(description="a log line's channel")
    user_id: SnowflakeOut | None = Field(description="a role change's member")
    role_id: SnowflakeOut | None = Field(description="a role change's role")
    action: str | None = Field(description="a role change: `add` or `remove`")
    record: str | None = Field(description="a log line: the kind of record it reports")
    attempts: int = Field(description="attempts since it was queued or last retried")
    cause: str | None = Field(description="why it failed, as a code staff can act on")
    cause_text: str | None = Field(description="the cause in words, with what to do")
    discord_code: int | None = Field(description="Discord's JSON error code, if any")
    last_error: str | None = Field(description="the last error, redacted")
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        failed = d.status in (DeliveryStatus.FAILED, DeliveryStatus.DEAD_LETTERED)
        return cls(id=d.id, ref=delivery_ref(d.id), guild_id=d.guild_id, kind=d.kind,
                   status=d.status, channel_id=d.channel_id, user_id=d.user_id,
                   role_id=d.role_id, action=d.action, record=d.record, attempts=d.attempts,
                   cause=d.cause, cause_text=describe(d.cause) if failed else None,
                   discord_code=d.discord_code, last_error=d.last_error,
                   created_at=d.created_at, updated_at=d.updated_at,
                   delivered_at=d.delivered_at)


class DeliveryAttemptOut(BaseModel):
    attempt: int = Field(description="the attempt's number since queued or last retried")
    started_at: datetime
    duration_ms: int
    outcome: str | None = Field(description="the status the attempt ended in")
    retryable: bool
    http_status: int | None
    discord_code: int | None
    error: str | None = Field(description="redacted")
    worker: str

    @classmethod
    def of(cls, a: DeliveryAttempt) -> DeliveryAttemptOut:
        return cls(attempt=a.attempt, started_at=a.started_at, duration_ms=a.duration_ms,
                   outcome=a.outcome, retryable=a.retryable, http_status=a.http_status,
                   discord_code=a.discord_code, error=a.error, worker=a.worker)


class DeliveryDetail(DeliveryOut):
    attempts_timeline: list[DeliveryAttemptOut] = Field(
        description="its newest attempts, oldest first; the numbers start again at 1 where "
                    "it was queued again (by staff, or by the worker for a refused log line)")
    earlier_attempts: bool = Field(description="older attempts exist that are not listed")


class DeliveryPageOut(BaseModel):
    items: list[DeliveryOut] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class DeliveryRetryBody(ActorBody):
    pass


class RetryFailedBody(ActorBody):
    kind: OutboxKind | None = Field(default=None, description="only role changes "
                                    "(`role_sync`) or only log lines (`mirror`)")


class DeliveryRetryOut(BaseModel):
    matched: int = Field(description="failed deliveries taken by this retry")
    requeued: int = Field(description="queued to be delivered again")
    stale: int = Field(description="role changes the member's current state no longer "
                                   "calls for: skipped, not applied")
    waiting: int = Field(description="log lines kept failed: the guild has no log channel")
    more: bool = Field(description="more failed deliveries are left: call again")
    requeued_ids: list[int]
    stale_ids: list[int]

    @classmethod
    def of(cls, r: RetryResult) -> DeliveryRetryOut:
        return cls(matched=r.matched, requeued=r.requeued, stale=r.stale, waiting=r.waiting,
                   more=r.more, requeued_ids=r.requeued_ids, stale_ids=r.stale_ids)
