"""Deliveries staff can see and repair: outbox rows (role grants and removals, log-channel
lines) that failed for good, why, and their retry.

A delivery that failed stays an outbox row (`D42`, never confused with dead letter `#42`)
with its cause and its attempts. Staff fix the cause in Discord, then retry one delivery or
all of a guild's failed deliveries. A retried log-channel line goes to the guild's log
channel as it is set now, in its original order. A retried role change is decided again from
the member's current state (`role_wanted`): one that no longer applies (the member was
unverified, or left, since) is skipped and counted as stale, never applied blindly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain.commands import new_correlation_id
from domain.dead_letter_reads import parse_cursor
from domain.errors import InvalidInput, InvalidStatus, NotFound
from domain.lifecycle import Source, State
from domain.persistence.deliveries import DeliveryStore, RequeuePlan
from domain.records import (
    Delivery,
    DeliveryAttempt,
    DeliveryPage,
    DeliverySummary,
    DeliveryTimeline,
    RetryResult,
)
from domain.transitions import role_wanted
from domain.vocabulary import DeliveryCause, DeliveryStatus, OutboxKind

# What staff look at by default: deliveries that will not be tried again on their own.
FAILED_STATUSES = (DeliveryStatus.FAILED, DeliveryStatus.DEAD_LETTERED)
MAX_PAGE = 100
# One retry-failed call requeues at most this many rows (in id order); the answer says
# whether more are left, and the next call takes them.
RETRY_BATCH = 1000


_CAUSE_TEXT = {
    DeliveryCause.ROLE_BELOW: "Lifeline's role is below the verified role: move it above "
                              "(Server Settings → Roles, drag Lifeline's role up)",
    DeliveryCause.MISSING_MANAGE_ROLES: "Lifeline lacks Manage Roles: grant it to "
                                        "Lifeline's role",
    DeliveryCause.ROLE_DELETED: "the verified role was deleted: choose one with "
                                "/lifeline setup",
    DeliveryCause.CHANNEL_DELETED: "the log channel was deleted: choose another with "
                                   "/lifeline setup",
    DeliveryCause.CHANNEL_HIDDEN: "Lifeline cannot see {channel}: give it View Channel there",
    DeliveryCause.MISSING_SEND_MESSAGES: "missing Send Messages in {channel}",
    DeliveryCause.MISSING_EMBED_LINKS: "missing Embed Links in {channel}",
    DeliveryCause.NO_LOG_CHANNEL: "no log channel is set: choose one with /lifeline setup",
    DeliveryCause.UNREADABLE_RECORD: "the stored line cannot be read by this version of "
                                     "Lifeline (see the error)",
    DeliveryCause.DISCORD_UNAVAILABLE: "Discord kept failing or did not answer; retry "
                                       "when it works again",
    DeliveryCause.REFUSED: "Discord refused it (see the error)",
}


def describe(cause: str | None, channel: str = "the log channel") -> str:
    """A cause in words, with what to do about it; `channel` names the channel (a mention
    in Discord, plain words elsewhere)."""
    if cause is None:
        return "no cause recorded (see the error)"
    try:
        return _CAUSE_TEXT[DeliveryCause(cause)].format(channel=channel)
    except ValueError:
        return f"{cause} (see the error)"


def delivery_ref(delivery_id: int) -> str:
    """How staff read a delivery's id everywhere: D42 (a dead letter is #42)."""
    return f"D{delivery_id}"


# A delivery's timeline shows its newest attempts: all a reader needs, and bounded (a log
# line refused for days is tried again every few minutes).
SHOWN_ATTEMPTS = 100  # one delivery (API, CLI; Discord shows the newest that fit)
PAGE_ATTEMPTS = 20  # each delivery of the console's page
REQUEUED = "queued again: attempts count from 1"


def requeued_before(attempts: Sequence[DeliveryAttempt], index: int) -> bool:
    """Whether the row was queued again just before `attempts[index]`: by staff, or by the
    worker for a log line refused for a permission (either sets its attempt count back to
    0, so the numbers start again at 1)."""
    return index > 0 and attempts[index].attempt <= attempts[index - 1].attempt


def parse_delivery_id(raw: str) -> int:
    """`D42`, `d42` or `42`: ASCII digits only, at most a bigint."""
    value = raw.strip()
    if value[:1] in ("D", "d"):
        value = value[1:]
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) < 2**63:
        raise InvalidInput(f"{raw[:40]!r} is not a delivery id: use the D number from "
                           "/dlq deliveries, like D42")
    return int(value)


def decide(kind: OutboxKind, payload: dict[str, Any], member_state: State | None,
           verified_role_id: int | None, log_channel_id: int | None) -> str:
    """What a retry does with one failed delivery: "requeue", "stale" (a role change the
    member's current state no longer calls for, or no verified role any more) or "wait"
    (a log line with no log channel to go to)."""
    if kind is OutboxKind.MIRROR:
        return "requeue" if log_channel_id is not None else "wait"
    wanted = role_wanted(member_state)
    action = str(payload.get("action"))
    if verified_role_id is None or wanted is None or wanted != (action == "add"):
        return "stale"
    return "requeue"


class DeliveryService:
    def __init__(self, store: DeliveryStore) -> None:
        self.store = store

    async def page(self, guild_id: int, *, statuses: Sequence[DeliveryStatus] = FAILED_STATUSES,
                   kind: OutboxKind | None = None, cursor: str | None = None,
                   limit: int = 20) -> DeliveryPage:
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
        before = parse_cursor(cursor)
        items = await self.store.page(guild_id, [s.value for s in statuses],
                                      kind.value if kind else None, before, limit + 1)
        more = len(items) > limit
        items = items[:limit]
        return DeliveryPage(items, str(items[-1].id) if more and items else None)

    async def show(self, guild_id: int, delivery_id: int
                   ) -> tuple[Delivery, DeliveryTimeline]:
        found = await self.store.get(guild_id, delivery_id)
        if found is None:
            raise NotFound(f"delivery {delivery_ref(delivery_id)} does not exist in this "
                           "guild")
        return found, (await self.store.attempts(guild_id, [delivery_id],
                                                 SHOWN_ATTEMPTS))[delivery_id]

    async def timelines(self, guild_id: int, delivery_ids: Sequence[int]
                        ) -> dict[int, DeliveryTimeline]:
        """The newest attempts of each of a page's deliveries, read at once."""
        return await self.store.attempts(guild_id, delivery_ids, PAGE_ATTEMPTS)

    async def failed_count(self, guild_id: int, kind: OutboxKind | None = None) -> int:
        return await self.store.failed_count(guild_id, kind.value if kind else None)

    async def summary(self, guild_id: int) -> DeliverySummary:
        return await self.store.summary(guild_id)

    async def retry(self, guild_id: int, delivery_id: int, actor_id: int,
                    source: Source) -> RetryResult:
        """Retry one failed delivery (NotFound if there is none of that id in the guild;
        InvalidStatus if it has not failed)."""
        found = await self.store.get(guild_id, delivery_id)
        if found is None:
            raise NotFound(f"delivery {delivery_ref(delivery_id)} does not exist in this "
                           "guild")
        if found.status not in FAILED_STATUSES:
            raise InvalidStatus(f"{delivery_ref(found.id)} has not failed (it is "
                               f"{found.status.value}): only failed deliveries are retried")
        return await self._requeue(guild_id, [delivery_id], None, actor_id, source)

    async def retry_failed(self, guild_id: int, actor_id: int, source: Source, *,
                           kind: OutboxKind | None = None) -> RetryResult:
        """Retry the guild's failed deliveries (of one kind, if given), oldest first, up to
        RETRY_BATCH of them (`more` says whether some are left)."""
        return await self._requeue(guild_id, None, kind, actor_id, source)

    async def _requeue(self, guild_id: int, ids: list[int] | None, kind: OutboxKind | None,
                       actor_id: int, source: Source) -> RetryResult:
        plan = RequeuePlan(guild_id=guild_id, ids=ids, kind=kind.value if kind else None,
                           limit=RETRY_BATCH, actor_id=actor_id, source=source.value,
                           correlation_id=new_correlation_id(),
                           decide=decide)
        return await self.store.requeue(plan)
