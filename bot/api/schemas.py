"""Request and response bodies of the HTTP API (they generate the OpenAPI document).

Discord ids (snowflakes) go out as JSON strings, as Discord itself sends them: a JavaScript
client would silently round a 19-digit number. They come in as a string or an integer.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    WithJsonSchema,
)

from bot.ids import discord_ids_as_strings
from domain.commands import MAX_KEY_LENGTH, MAX_REASON_LENGTH, MAX_SNOWFLAKE
from domain.entries import DeadLetterEntry, RemediationRecord
from domain.lifecycle import Operation, Source, State
from domain.remediation import MAX_NOTE
from domain.vocabulary import DeadLetterStatus, ReasonCode

MAX_VERSION = 2**31 - 1  # members.version is an `integer` column
MAX_SIGNATURE = 300


def decimal_up_to(limit: int) -> str:
    """A regular expression of the decimal numbers 1..limit (no leading zeros): the ids'
    pattern in the OpenAPI document admits exactly what the API accepts."""
    digits = str(limit)
    shorter = f"[1-9][0-9]{{0,{len(digits) - 2}}}" if len(digits) > 1 else None
    same_length = []
    for i, d in enumerate(digits):
        low = 1 if i == 0 else 0
        if int(d) > low:
            rest = len(digits) - i - 1
            same_length.append(f"{digits[:i]}[{low}-{int(d) - 1}]"
                               + (f"[0-9]{{{rest}}}" if rest else ""))
    same_length.append(digits)
    return "^(?:" + "|".join(([shorter] if shorter else []) + same_length) + ")$"


SNOWFLAKE_PATTERN = decimal_up_to(MAX_SNOWFLAKE)


def _snowflake_in(value: Any) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_SNOWFLAKE:
        raise ValueError(f"must be a Discord id between 1 and {MAX_SNOWFLAKE} "
                         "(a string of digits or an integer)")
    return value


def _safe_text(value: str | None) -> str | None:
    """PostgreSQL text holds neither NUL nor lone surrogates (which JSON can carry)."""
    if value is None:
        return None
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no unpaired surrogates)") from None
    return value


SnowflakeIn = Annotated[int, BeforeValidator(_snowflake_in), WithJsonSchema({
    "anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_SNOWFLAKE},
              {"type": "string", "pattern": SNOWFLAKE_PATTERN}],
    "description": "Discord id, as a string of digits (preferred) or an integer",
})]
SnowflakeOut = Annotated[int, PlainSerializer(str, return_type=str), WithJsonSchema({
    "type": "string", "pattern": SNOWFLAKE_PATTERN, "description": "Discord id",
})]
SafeText = Annotated[str, AfterValidator(_safe_text)]


class RequestBody(BaseModel):
    # A misspelt field (say `expected_versoin`) must not silently turn strict mode off.
    model_config = ConfigDict(extra="forbid")


# ---- errors ------------------------------------------------------------------------------

class FieldError(BaseModel):
    loc: str = Field(description="where: body.<field>, path.<name> or query.<name>")
    message: str


class ErrorBody(BaseModel):
    """Every error answer. `error` is a stable code; `detail` is fit to show a person."""

    error: str = Field(description="stable machine-readable code, e.g. version_conflict")
    detail: str = Field(description="what went wrong, in words")
    errors: list[FieldError] | None = Field(
        default=None, description="invalid_input: each offending field")
    current_state: State | None = Field(
        default=None, description="version_conflict, transition_not_allowed: the stored state "
        "(null: no record)")
    current_version: int | None = Field(default=None, description="version_conflict")
    expected_state: State | None = Field(default=None, description="version_conflict")
    expected_version: int | None = Field(default=None, description="version_conflict")
    operation: Operation | None = Field(default=None, description="transition_not_allowed")
    dead_letter_id: int | None = Field(
        default=None, description="dead_lettered: the entry that now holds the write")
    reason_code: ReasonCode | None = Field(default=None, description="dead_lettered")
    recorded_state: State | None = Field(
        default=None, description="stale_entry: the member's state when the dead letter was "
                                  "recorded (null: no record then)")
    recorded_version: int | None = Field(default=None, description="stale_entry")
    transitions_since: int | None = Field(
        default=None, description="stale_entry: how many transitions the member had since")
    recent_transitions: list[LedgerEntryOut] | None = Field(
        default=None, description="stale_entry: up to 20 of them, newest first")


# ---- members -----------------------------------------------------------------------------

class MemberOut(BaseModel):
    guild_id: SnowflakeOut
    user_id: SnowflakeOut
    state: State
    version: int = Field(description="number of accepted transitions so far")
    updated_at: datetime


class TransitionRequest(RequestBody):
    operation: Operation
    idempotency_key: Annotated[SafeText, Field(
        min_length=1, max_length=MAX_KEY_LENGTH,
        description="the same key for the same member applies at most once; a repeat "
                    "answers with the first result")]
    reason: Annotated[SafeText | None, Field(max_length=MAX_REASON_LENGTH)] = None
    actor_id: SnowflakeIn | None = Field(default=None, description="the person who acted")
    expected_state: State | None = Field(
        default=None, description="strict mode: refuse with 409 unless the member is in this "
        "state")
    expected_version: int | None = Field(
        default=None, ge=0, le=MAX_VERSION,
        description="strict mode: refuse with 409 unless the member is at this version "
                    "(0 = no record yet)")


class TransitionOut(BaseModel):
    member: MemberOut
    transition_id: int | None = Field(
        description="the ledger row; null when already there (nothing written)")
    applied: bool = Field(description="false for an idempotent repeat (the first result), "
                                      "or when already there")
    already_there: bool = Field(
        default=False, description="another writer moved the member to the state this "
                                   "request wanted, first: the intent is achieved, nothing "
                                   "was written, no dead letter")
    operation: Operation
    from_state: State | None


class LedgerEntryOut(BaseModel):
    id: int
    version: int
    operation: Operation
    from_state: State | None
    to_state: State
    source: Source
    actor_id: SnowflakeOut | None
    reason: str | None
    idempotency_key: str
    correlation_id: str
    created_at: datetime


class LedgerOut(BaseModel):
    items: list[LedgerEntryOut] = Field(description="newest first")


# ---- dead letters ------------------------------------------------------------------------

class DeadLetterOut(BaseModel):
    id: int
    guild_id: SnowflakeOut
    user_id: SnowflakeOut
    operation: Operation
    from_state: State | None
    to_state: State | None
    observed_state: State | None
    observed_version: int | None
    reason_code: ReasonCode
    error_type: str
    error_message: str
    attempts: int
    source: Source
    actor_id: SnowflakeOut | None
    idempotency_key: str
    correlation_id: str
    payload: dict[str, Any] = Field(description="the whole command, enough to replay it "
                                                "(its Discord ids as strings)")
    signature: str = Field(description="operation/reason_code/error_type: the group key")
    status: DeadLetterStatus
    remediation_count: int
    last_remediated_at: datetime | None
    resolved_by: SnowflakeOut | None
    resolution_note: str | None
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, entry: DeadLetterEntry) -> DeadLetterOut:
        data = entry.as_dict()
        data["payload"] = discord_ids_as_strings(data["payload"])
        return cls.model_validate(data)


class RemediationOut(BaseModel):
    id: int
    dead_letter_id: int
    actor_id: SnowflakeOut
    source: Source
    action: str
    outcome: str
    status_before: DeadLetterStatus
    status_after: DeadLetterStatus
    note: str | None
    error_message: str | None
    correlation_id: str
    created_at: datetime

    @classmethod
    def of(cls, record: RemediationRecord) -> RemediationOut:
        return cls.model_validate(record.as_dict())


class DeadLetterDetail(DeadLetterOut):
    stack_trace: str | None = Field(description=(
        "the original failure's traceback, redacted; at most 8,192 characters (a longer "
        "one keeps its end, after a line saying how much was left out); null for entries "
        "recorded before stack traces were kept"))
    history: list[RemediationOut] = Field(description="remediation actions, oldest first")


class StatusFilter(enum.StrEnum):
    """A list's status filter: one status, `unresolved` (open and retrying) or `all`."""

    OPEN = "open"
    RETRYING = "retrying"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"
    UNRESOLVED = "unresolved"
    ALL = "all"


class DeadLetterPage(BaseModel):
    items: list[DeadLetterOut] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")
    total: int = Field(description="entries matching the filters, all pages; when "
                                   "`total_exact` is false, more than this many match")
    total_exact: bool = Field(description="false when the count stopped at `count_limit`")


class ActorBody(RequestBody):
    actor_id: SnowflakeIn = Field(description="the person acting (audited)")


class NoteBody(ActorBody):
    note: Annotated[SafeText, Field(min_length=1, max_length=MAX_NOTE)]


class OptionalNoteBody(ActorBody):
    note: Annotated[SafeText | None, Field(min_length=1, max_length=MAX_NOTE)] = None


class RetryBody(ActorBody):
    force: StrictBool = Field(default=False, description=(
        "replay even if the member changed since the entry was recorded (else 409 "
        "stale_entry); audited as forced"))


class RetryGroupBody(ActorBody):
    signature: Annotated[SafeText, Field(min_length=1, max_length=MAX_SIGNATURE)]
    force: StrictBool = Field(default=False, description=(
        "replay stale entries too (else they are skipped and counted in `stale`)"))


class RetryAllFilters(RequestBody):
    """The list's filters, with its names; only unresolved entries are retried."""

    status: Literal["open", "retrying", "unresolved"] | None = Field(
        default=None, description="default unresolved (open and retrying); retrying "
                                  "entries are counted in `skipped`, never replayed")
    operation: Operation | None = None
    signature: Annotated[SafeText | None, Field(min_length=1, max_length=MAX_SIGNATURE)] = None
    source: Source | None = None
    user_id: SnowflakeIn | None = None


class RetryAllBody(ActorBody):
    filters: RetryAllFilters = Field(default_factory=RetryAllFilters)
    dry_run: StrictBool = Field(default=False, description=(
        "only count the matches (`matched`); nothing is replayed or written"))
    force: StrictBool = Field(default=False, description=(
        "replay stale entries too (else they are skipped and counted in `stale`)"))


class RetryAllOut(BaseModel):
    matched: int = Field(description="unresolved entries matching the filters")
    resolved: int
    failed: int
    skipped: int = Field(description="being retried by someone else, or acted on meanwhile")
    stale: int = Field(description="not replayed: their member changed since they were "
                                   "recorded (open as they were; `force` replays them)")
    remaining: int = Field(description="matches past this request's bound of 1,000 entries "
                                       "(oldest first): not attempted, send it again")
    dry_run: bool


class DeletedOut(BaseModel):
    deleted: DeadLetterOut = Field(description="the entry as it was; its audit rows stay")


class RetryOut(BaseModel):
    entry: DeadLetterOut
    resolved: bool = Field(description="false: the replay failed and the entry is open again")
    detail: str
    already_applied: bool = Field(
        description="the original write had been applied meanwhile; nothing applied twice")


class GroupRetryOut(BaseModel):
    signature: str
    total: int
    resolved: int
    failed: int
    skipped: int = Field(description="acted on by someone else meanwhile")
    stale: int = Field(description="not replayed: their member changed since they were "
                                   "recorded (open as they were; `force` replays them)")


class StatusCounts(BaseModel):
    open: int
    retrying: int
    resolved: int
    dismissed: int


class SignatureCountOut(BaseModel):
    signature: str
    operation: Operation
    reason_code: ReasonCode
    open: int
    total: int


class StatsOut(BaseModel):
    total: int = Field(description="every entry of the guild, whatever its status")
    by_status: StatusCounts
    by_signature: list[SignatureCountOut]
    oldest_open_age_seconds: float | None
    retention_days: int = Field(description="0 keeps everything")


# ---- operations --------------------------------------------------------------------------

class IngestOut(BaseModel):
    lag_seconds: float = Field(description="age of the oldest gateway event not yet applied")
    backlog: int = Field(description="gateway events logged and not yet applied")
    dropped: int = Field(description="events refused since start because the log was full "
                                     "(or could not be written)")
    refusing: bool = Field(description="the log refused an event within the last minute: "
                                       "events are being lost (their guilds are reconciled "
                                       "once there is room)")
    unhealthy_after_seconds: float = Field(description="INGEST_LAG_UNHEALTHY_SECONDS")


class HealthOut(BaseModel):
    status: Literal["ok", "unhealthy"]
    database: str = Field(description="ok, or why the database check failed")
    gateway: Literal["connected", "disconnected", "not_in_process"]
    ingest: IngestOut | None = Field(description=(
        "the gateway ingest pipeline; null when this process holds no gateway (an API-only "
        "replica)"))
    failing: list[Literal["database", "gateway", "ingest"]] = Field(
        description="`ingest`: the oldest waiting event is older than "
                    "INGEST_LAG_UNHEALTHY_SECONDS, or the log is refusing events")


ErrorBody.model_rebuild()  # its recent_transitions are LedgerEntryOut, defined above
