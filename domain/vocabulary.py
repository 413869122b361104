"""The domain's vocabulary: every enumerated value Lifeline stores, shows or accepts.

The lifecycle's states, operations and sources (the spec's table, ../shared/design/
lifecycle.md), and the values of the dead-letter store, the outbox and guild settings.
PostgreSQL enum types of the same names hold them (domain/persistence/tables.py).
"""

from __future__ import annotations

import enum


class State(enum.StrEnum):
    JOINED = "joined"
    ONBOARDING_IN_PROGRESS = "onboarding_in_progress"
    ONBOARDING_COMPLETED = "onboarding_completed"
    ROLE_ELIGIBLE = "role_eligible"
    RULES_ACCEPTED = "rules_accepted"
    VERIFICATION_PENDING = "verification_pending"
    VERIFIED = "verified"
    REJECTED_NOT_ELIGIBLE = "rejected_not_eligible"
    KICKED = "kicked"
    LEFT_GUILD = "left_guild"
    BANNED = "banned"


class Operation(enum.StrEnum):
    JOIN = "join"
    START_ONBOARDING = "start_onboarding"
    COMPLETE_ONBOARDING = "complete_onboarding"
    MARK_ROLE_ELIGIBLE = "mark_role_eligible"
    ACCEPT_RULES = "accept_rules"
    REQUEST_VERIFICATION = "request_verification"
    VERIFY = "verify"
    REJECT = "reject"
    REOPEN = "reopen"
    REVERIFY = "reverify"
    KICK = "kick"
    LEAVE = "leave"
    BAN = "ban"
    UNBAN = "unban"


class Source(enum.StrEnum):
    BOT = "bot"
    API = "api"
    STAFF = "staff"
    CLI = "cli"
    REPLAY = "replay"
    CONSOLE = "console"  # the staff web console (issue 15; migration 0004)


class DeadLetterStatus(enum.StrEnum):
    OPEN = "open"
    RETRYING = "retrying"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"


class ReasonCode(enum.StrEnum):
    RETRIES_EXHAUSTED = "retries_exhausted"
    NOT_APPLICABLE_AFTER_CONFLICT = "not_applicable_after_conflict"
    NOT_APPLICABLE = "not_applicable"
    UNEXPECTED_ERROR = "unexpected_error"


class MirrorLevel(enum.StrEnum):
    REMEDIATION = "remediation"
    DEAD_LETTERS = "dead_letters"
    ALL = "all"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    RETRY_SCHEDULED = "retry_scheduled"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"
    # A role delivery retried after the member's state moved on: it no longer applies.
    SKIPPED = "skipped"


class DeliveryCause(enum.StrEnum):
    """Why a delivery failed, in terms of what staff can fix (the Discord edge decides it)."""

    ROLE_BELOW = "role_below"  # Lifeline's top role is not above the verified role
    MISSING_MANAGE_ROLES = "missing_manage_roles"
    ROLE_DELETED = "role_deleted"
    CHANNEL_DELETED = "channel_deleted"
    CHANNEL_HIDDEN = "channel_hidden"  # no View Channel (Discord: Missing Access)
    MISSING_SEND_MESSAGES = "missing_send_messages"
    MISSING_EMBED_LINKS = "missing_embed_links"
    NO_LOG_CHANNEL = "no_log_channel"
    UNREADABLE_RECORD = "unreadable_record"  # a stored line this version cannot render
    DISCORD_UNAVAILABLE = "discord_unavailable"  # errors or timeouts until attempts ran out
    REFUSED = "refused"  # any other refusal: see the error


class OutboxKind(enum.StrEnum):
    MIRROR = "mirror"
    ROLE_SYNC = "role_sync"


def state_name(state: str | None) -> str:
    """A state as people read it: "new" for a member with no record yet."""
    return str(state) if state else "new"


def target_name(state: str | None) -> str:
    """A transition's target as people read it: "?" when there was none (the operation was
    not allowed from where the member was). The log channel and /dlq say it the same way."""
    return str(state) if state else "?"


def state_value(state: State | None) -> str | None:
    """A state as the database stores it, None for no record."""
    return state.value if state else None
