"""Domain errors. Each carries a message fit to show a member, staff or an HTTP client."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "domain_error"


class InvalidInput(DomainError):
    code = "invalid_input"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class StrictConflict(Conflict):
    """Strict mode: the caller's expectation does not match the stored member."""

    code = "version_conflict"

    def __init__(self, current_state: str | None, current_version: int | None,
                 expected_state: str | None, expected_version: int | None) -> None:
        self.current_state = current_state
        self.current_version = current_version
        self.expected_state = expected_state
        self.expected_version = expected_version
        super().__init__(
            f"the member is in state {current_state or '(no record)'} at version "
            f"{current_version if current_version is not None else 0}; the request expected "
            f"{expected_state or 'any state'} at version "
            f"{expected_version if expected_version is not None else 'any'}"
        )


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"

    def __init__(self, key: str, first_operation: str, operation: str) -> None:
        self.key = key
        super().__init__(
            f"idempotency key {key!r} was already used for '{first_operation}' on this member; "
            f"it cannot be reused for '{operation}'"
        )


class TransitionDeadLettered(DomainError):
    """The write could not be made; it is stored as dead letter `dead_letter_id`."""

    code = "dead_lettered"

    def __init__(self, dead_letter_id: int, reason_code: str, detail: str) -> None:
        self.dead_letter_id = dead_letter_id
        self.reason_code = reason_code
        super().__init__(
            f"the change could not be written ({reason_code}: {detail}); it is kept as "
            f"dead letter #{dead_letter_id} for staff to retry"
        )


class AlreadyRetrying(Conflict):
    code = "already_retrying"


class PayloadInvalid(Conflict):
    """A dead letter's stored command cannot be read (an operation renamed by a later
    release, a damaged row): the entry goes back to open, with this as its error."""

    code = "payload_invalid"


class StaleEntry(Conflict):
    """The member changed since the dead letter was recorded: replaying its command now
    would apply it to the member as they are, not as they were. Not applied unless forced."""

    code = "stale_entry"

    def __init__(self, entry_id: int, operation: str, recorded_state: str | None,
                 recorded_version: int, current_state: str | None, current_version: int,
                 recent_transitions: list[Any]) -> None:
        self.entry_id = entry_id
        self.operation = operation
        self.recorded_state = recorded_state
        self.recorded_version = recorded_version
        self.current_state = current_state
        self.current_version = current_version
        self.transitions_since = max(current_version - recorded_version, 0)
        self.recent_transitions = recent_transitions  # LedgerEntry, newest first, <= 20
        super().__init__(
            f"dead letter #{entry_id} is stale: when it was recorded the member was "
            f"{recorded_state or 'new'} at version {recorded_version}; now "
            f"{current_state or 'without a record'} at version {current_version} "
            f"({self.transitions_since} transition(s) since). Replaying `{operation}` now "
            "would apply it to the member as they are: check, then replay anyway (force) "
            "or dismiss it")


class EntryDismissed(Conflict):
    code = "dismissed"


class InvalidStatus(Conflict):
    code = "invalid_status"


class GuildNotSetUp(DomainError):
    code = "guild_not_set_up"


class DatabaseUnavailable(DomainError):
    code = "database_unavailable"

    def __init__(self, detail: str = "") -> None:
        super().__init__("the database is unavailable right now; nothing was changed, try "
                         "again in a minute" + (f" ({detail})" if detail else ""))
