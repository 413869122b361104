"""`/dlq delivery`'s embed: the newest attempts that fit Discord's 1,024-character field,
in order, with the place each re-queue restarted the numbers; no cause or retry hint on a
delivery that no longer failed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cogs.dlq_deliveries import FIELD_MAX, delivery_embed
from domain.records import Delivery, DeliveryAttempt, DeliveryTimeline
from domain.vocabulary import DeliveryStatus, OutboxKind

NOW = datetime(2026, 12, 2, tzinfo=UTC)


def _delivery(status: DeliveryStatus) -> Delivery:
    return Delivery(id=42, guild_id=1, kind=OutboxKind.MIRROR, status=status, channel_id=7,
                    user_id=None, role_id=None, action=None, record="dead_letter",
                    attempts=1, cause="missing_embed_links", discord_code=50013,
                    last_error="403 Forbidden", created_at=NOW, updated_at=NOW,
                    delivered_at=None)


def _attempt(n: int, minutes: int) -> DeliveryAttempt:
    return DeliveryAttempt(attempt=n, started_at=NOW + timedelta(minutes=minutes),
                           duration_ms=100 + minutes, outcome="failed", retryable=False,
                           http_status=403, discord_code=50013, error=None, worker="w")


def test_a_long_timeline_keeps_its_newest_attempts_within_the_field() -> None:
    # A line refused for hours: queued again every 5 minutes, each time attempt #1.
    attempts = [_attempt(1, 5 * i) for i in range(30)]
    embed = delivery_embed(_delivery(DeliveryStatus.FAILED), DeliveryTimeline(attempts, True))
    [field] = embed.fields
    assert field.value is not None and len(field.value) <= FIELD_MAX
    lines = field.value.splitlines()
    assert lines[-1].endswith(f"{100 + 5 * 29} ms")  # the newest attempt, last
    # Each attempt shown came after a re-queue (all but the very first, not shown), so each
    # has its marker whole just above it.
    assert all(line == "↻ queued again: attempts count from 1" for line in lines[::2])
    assert all(line.startswith("`#1`") for line in lines[1::2]) and len(lines) % 2 == 0
    assert field.name == f"Attempts (the newest {sum(ln.startswith('`#') for ln in lines)})"
    assert embed.footer.text is not None and "delivery-retry D42" in embed.footer.text


def test_a_short_timeline_is_whole_and_a_delivered_one_has_nothing_to_fix() -> None:
    attempts = [_attempt(1, 0), _attempt(2, 1), _attempt(1, 10)]
    embed = delivery_embed(_delivery(DeliveryStatus.DELIVERED),
                           DeliveryTimeline(attempts, False))
    [field] = embed.fields
    assert field.name == "Attempts (3)"
    assert field.value is not None
    assert [line[:4] for line in field.value.splitlines()] == ["`#1`", "`#2`", "↻ qu", "`#1`"]
    assert "Cause" not in (embed.description or "") and embed.footer.text is None
