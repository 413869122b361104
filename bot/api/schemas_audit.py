"""Bodies of the audit read (`GET /api/v1/guilds/{guild_id}/audit`).

Every id is a string of digits: the audit row's own, its target's and its actor's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, PlainSerializer, WithJsonSchema

from bot.api.schemas import SnowflakeOut
from domain.entries import RemediationRecord
from domain.lifecycle import Source

IdOut = Annotated[int, PlainSerializer(str, return_type=str), WithJsonSchema({
    "type": "string", "pattern": "^[0-9]{1,19}$", "description": "id, as a string of digits",
})]


class AuditOut(BaseModel):
    id: IdOut
    target_kind: Literal["dead_letter", "delivery"]
    target_id: IdOut = Field(description="the dead letter's or the outbox delivery's id")
    dead_letter_id: IdOut | None = Field(description="null for a delivery")
    actor_id: SnowflakeOut
    source: Source
    action: str
    outcome: str
    status_before: str
    status_after: str = Field(description="the target's status after; `deleted` for a "
                                          "deleted dead letter")
    note: str | None
    error_message: str | None
    correlation_id: str
    created_at: datetime

    @classmethod
    def of(cls, record: RemediationRecord) -> AuditOut:
        return cls.model_validate(record.as_dict())


class AuditPageOut(BaseModel):
    items: list[AuditOut] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `before` for the next page")
