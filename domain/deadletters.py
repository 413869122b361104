"""Dead-letter records: written in their own transaction, never only a log line."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any

from domain.commands import TransitionCommand
from domain.entries import error_type_of, signature_of
from domain.mirror import dead_letter_facts
from domain.persistence.dead_letters import DeadLetterStore
from domain.redaction import redact
from domain.vocabulary import ReasonCode, State, state_value

# dead_letters.stack_trace holds at most this many characters (its check constraint).
MAX_STACK_TRACE = 8192
TRUNCATED = "… (truncated: {n} characters of the oldest frames left out)\n"


def stack_trace(error: BaseException) -> str:
    """The failure's traceback (its causes included), redacted and bounded: when too long,
    its end is kept (the innermost frames and the error itself, what staff read first),
    after a line saying how much was left out."""
    text = redact("".join(traceback.format_exception(error)), limit=10**9)
    if len(text) <= MAX_STACK_TRACE:
        return text
    # The head's own length depends on the number it gives; its digits never exceed 5.
    keep = MAX_STACK_TRACE - len(TRUNCATED.format(n=10**5))
    return TRUNCATED.format(n=len(text) - keep) + text[-keep:]


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


class DeadLetterRecorder:
    def __init__(self, store: DeadLetterStore) -> None:
        self.store = store

    async def record(self, draft: DeadLetterDraft) -> int:
        """Writes the entry (and its log-channel record) and returns its id."""
        cmd = draft.command
        error_type = error_type_of(draft.error)
        record: dict[str, Any] = {
            "guild_id": cmd.guild_id, "user_id": cmd.user_id,
            "operation": cmd.operation.value,
            "from_state": state_value(draft.from_state), "to_state": state_value(draft.to_state),
            "observed_state": state_value(draft.observed_state),
            "observed_version": draft.observed_version,
            "reason_code": draft.reason_code.value, "error_type": error_type,
            "error_message": redact(str(draft.error) or error_type),
            "attempts": draft.attempts, "source": cmd.source.value, "actor_id": cmd.actor_id,
            "idempotency_key": cmd.idempotency_key, "correlation_id": cmd.correlation_id,
            "payload": cmd.to_payload(),
            "signature": signature_of(cmd.operation.value, draft.reason_code.value, error_type),
            "stack_trace": stack_trace(draft.error),
        }
        # The entry's id is not known yet: the store's insert sets it in the facts.
        return await self.store.insert(record, dead_letter_facts({**record, "id": None}))

