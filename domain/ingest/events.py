"""One gateway member event as the ingest log keeps it.

A membership event (join, leave, ban, unban) is applied as its operation, keyed by the
event (one key per operation per membership stint, so a replayed event applies once). A
member update only says "this member changed": the worker brings the member to what
Discord shows when it gets there (level-triggered), so it carries no flags.
"""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import dataclass
from typing import Any

from domain.commands import TransitionCommand
from domain.vocabulary import Operation, Source


class EventKind(enum.StrEnum):
    JOIN = "join"
    LEAVE = "leave"
    BAN = "ban"
    UNBAN = "unban"
    UPDATE = "update"  # a lifecycle-relevant member update: sync the member
    SYNC = "sync"  # reconcile: sync the member (never logged: derived from Discord again)


OPERATION_OF = {EventKind.JOIN: Operation.JOIN, EventKind.LEAVE: Operation.LEAVE,
                EventKind.BAN: Operation.BAN, EventKind.UNBAN: Operation.UNBAN}

REASONS = {EventKind.JOIN: "joined the server", EventKind.LEAVE: "left the server",
           EventKind.BAN: "banned", EventKind.UNBAN: "unbanned",
           EventKind.UPDATE: "member update", EventKind.SYNC: "caught up after reconnect"}


def event_key(op: Operation, guild_id: int, user_id: int, joined_at_ms: int | None) -> str:
    """One key per operation per membership stint: a replayed gateway event applies once.
    Without the stint's join time the event is unique (a random key, fixed when logged)."""
    if joined_at_ms is None:
        return f"gw:{op.value}:{uuid.uuid4().hex}"
    return f"gw:{op.value}:{guild_id}:{user_id}:{joined_at_ms}"


@dataclass(frozen=True, slots=True)
class MemberEvent:
    kind: EventKind
    guild_id: int
    user_id: int
    at: float  # when the bot received it (unix seconds): the ingest lag is measured from it
    key: str | None = None  # the idempotency key of a membership event's operation
    reason: str | None = None

    @classmethod
    def membership(cls, kind: EventKind, guild_id: int, user_id: int, at: float,
                   joined_at_ms: int | None, reason: str | None = None) -> MemberEvent:
        op = OPERATION_OF[kind]
        return cls(kind, guild_id, user_id, at, event_key(op, guild_id, user_id, joined_at_ms),
                   reason)

    @property
    def operation(self) -> Operation | None:
        return OPERATION_OF.get(self.kind)

    def command(self) -> TransitionCommand:
        """The operation of a membership event, as the bot's command."""
        op = self.operation
        assert op is not None and self.key is not None, f"{self.kind} is not a membership event"
        return TransitionCommand(guild_id=self.guild_id, user_id=self.user_id, operation=op,
                                 source=Source.BOT, idempotency_key=self.key,
                                 reason=self.reason or REASONS[self.kind])

    def to_line(self) -> bytes:
        data: dict[str, Any] = {"k": self.kind.value, "g": self.guild_id, "u": self.user_id,
                                "t": round(self.at, 3)}
        if self.key is not None:
            data["key"] = self.key
        if self.reason is not None:
            data["r"] = self.reason
        return (json.dumps(data, separators=(",", ":")) + "\n").encode()

    @classmethod
    def from_line(cls, raw: bytes) -> MemberEvent:
        data = json.loads(raw)
        return cls(EventKind(data["k"]), int(data["g"]), int(data["u"]), float(data["t"]),
                   data.get("key"), data.get("r"))
