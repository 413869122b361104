"""The writes of a remediation outcome (domain/remediation.py): the status change, the
audit row and the log-channel mirror facts, built from the entry as read."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from domain.entries import DeadLetterEntry, OutcomeWrite, error_type_of
from domain.errors import AlreadyRetrying
from domain.mirror import remediation_facts
from domain.redaction import redact
from domain.vocabulary import DeadLetterStatus, Source


def outcome_write(current: DeadLetterEntry, actor_id: int, source: Source, action: str,
                  outcome: str, to: DeadLetterStatus, note: str | None, correlation_id: str,
                  error: BaseException | None) -> OutcomeWrite:
    """The outcome to write: the status compare-and-set, the audit row and the mirror
    record, in one statement (all or nothing, one round trip)."""
    error_message = redact(str(error) or type(error).__name__) if error else None
    # The record names the entry's id, operation, member and states, which no
    # remediation changes: it is written from the entry as read, in the same statement.
    mirror = remediation_facts(action, actor_id, entry_fields(current), outcome, error_message,
                               note)
    return OutcomeWrite(
        entry_id=current.id, guild_id=current.guild_id, version=current.version,
        status=to.value,
        # A replay's audit row says the entry left `open` (its claim is bookkeeping).
        status_before=(DeadLetterStatus.OPEN.value
                       if current.status == DeadLetterStatus.RETRYING else current.status),
        actor_id=actor_id, source=source.value, action=action, outcome=outcome,
        note=note, closes=to in (DeadLetterStatus.RESOLVED, DeadLetterStatus.DISMISSED),
        counts=action != "reopen",
        error_type=error_type_of(error) if error else None, error_message=error_message,
        correlation_id=correlation_id, mirror=mirror)



def changed_meanwhile(entry: DeadLetterEntry) -> AlreadyRetrying:
    return AlreadyRetrying(f"dead letter #{entry.id} was changed by someone else meanwhile; "
                           "look at it again")


def entry_fields(entry: DeadLetterEntry) -> dict[str, Any]:
    """The entry's fields, shallow: as_dict() deep-copies the payload, which a mirror line
    does not read."""
    return {f.name: getattr(entry, f.name) for f in fields(entry)}


def past_tense(action: str) -> str:
    return {"retry": "retried", "resolve": "resolved", "dismiss": "dismissed",
            "reopen": "reopened", "delete": "deleted"}.get(action, action)
