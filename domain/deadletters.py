"""Dead-letter records: written in their own transaction, never only a log line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from domain.commands import TransitionCommand
from domain.lifecycle import State
from domain.mirror import dead_letter_line, enqueue_mirror
from domain.persistence.database import Database
from domain.persistence.tables import ReasonCode
from domain.redaction import redact

DEAD_LETTER_COLUMNS = (
    "id", "guild_id", "user_id", "operation", "from_state", "to_state", "observed_state",
    "observed_version", "reason_code", "error_type", "error_message", "attempts", "source",
    "actor_id", "idempotency_key", "correlation_id", "payload", "signature", "status",
    "remediation_count", "last_remediated_at", "resolved_by", "resolution_note", "created_at",
    "updated_at", "version",
)


def signature_of(operation: str, reason_code: str, error_type: str) -> str:
    """Stable grouping key: the same failure of the same operation groups together."""
    return f"{operation}/{reason_code}/{error_type}"


def error_type_of(error: BaseException) -> str:
    return type(error).__name__


@dataclass(frozen=True)
class DeadLetterDraft:
    command: TransitionCommand
    reason_code: ReasonCode
    error: BaseException
    attempts: int
    from_state: State | None
    to_state: State | None
    observed_state: State | None
    observed_version: int | None


_INSERT = text(
    """
    INSERT INTO dead_letters (
      guild_id, user_id, operation, from_state, to_state, observed_state, observed_version,
      reason_code, error_type, error_message, attempts, source, actor_id, idempotency_key,
      correlation_id, payload, signature, status)
    VALUES (
      :guild_id, :user_id, CAST(:operation AS member_operation),
      CAST(:from_state AS member_state), CAST(:to_state AS member_state),
      CAST(:observed_state AS member_state), :observed_version,
      CAST(:reason_code AS dead_letter_reason), :error_type, :error_message, :attempts,
      CAST(:source AS transition_source), :actor_id, :idempotency_key, :correlation_id,
      CAST(:payload AS jsonb), :signature, 'open')
    RETURNING id, created_at
    """
)


class DeadLetterRecorder:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, draft: DeadLetterDraft) -> int:
        cmd = draft.command
        error_type = error_type_of(draft.error)
        values: dict[str, Any] = {
            "guild_id": cmd.guild_id, "user_id": cmd.user_id,
            "operation": cmd.operation.value,
            "from_state": _sv(draft.from_state), "to_state": _sv(draft.to_state),
            "observed_state": _sv(draft.observed_state),
            "observed_version": draft.observed_version,
            "reason_code": draft.reason_code.value, "error_type": error_type,
            "error_message": redact(str(draft.error) or error_type),
            "attempts": draft.attempts, "source": cmd.source.value, "actor_id": cmd.actor_id,
            "idempotency_key": cmd.idempotency_key, "correlation_id": cmd.correlation_id,
            "payload": json.dumps(cmd.to_payload()),
            "signature": signature_of(cmd.operation.value, draft.reason_code.value, error_type),
        }
        async with self.db.transaction() as conn:
            row = (await conn.execute(_INSERT, values)).one()
            entry = {**values, "id": row.id}
            await enqueue_mirror(conn, cmd.guild_id, "dead_letter", dead_letter_line(entry),
                                 dead_letter_id=row.id)
        return int(row.id)


def _sv(state: State | None) -> str | None:
    return state.value if state else None


def row_to_dict(row: Any) -> dict[str, Any]:
    return dict(row._mapping)
