"""The log-channel mirror through the outbox worker, discord.py and the sandbox (in-process)."""

from __future__ import annotations

import json
import time

from sqlalchemy import text

from bot.delivery import DiscordDeliverer
from bot.formatting import fits_one_message, remediation_line
from domain.lifecycle import Operation, State
from domain.outbox import OutboxWorker, WorkerPolicy
from tests.bot.support import (
    channel_lines,
    dead_letter,
    drive,
    duplicates,
    enqueue_records,
    outbox_counts,
    record_facts,
    record_numbers,
    replayable,
    settled,
)
from tests.bot.world import Perm, World, eventually, setup_guild
from tests.helpers import next_user

POST = "/channels/{channel_id}/messages"


def _posts(world: World) -> list:  # type: ignore[type-arg]
    return [c for c in world.sandbox.calls_to("POST", POST)
            if c.path == f"/channels/{world.log_channel}/messages"]


async def test_a_burst_of_200_records_is_batched_in_order_without_duplicates(
        world: World) -> None:
    await setup_guild(world)
    start = time.monotonic()
    # 300-character lines: 13 fit the first embed, 6 more the second before the 6,000
    # characters of all embeds, so 19 a message and 11 messages, more than the channel takes
    # in one 5-second window.
    await enqueue_records(world.container.db, world.guild.id, range(200), width=300)
    await world.sandbox.wait_until(lambda: len(record_numbers(world.sandbox, world.log_channel))
                                   >= 200, timeout=40, what="200 records in #mod-log")
    elapsed = time.monotonic() - start
    numbers = record_numbers(world.sandbox, world.log_channel)
    messages = world.sandbox.messages(world.log_channel)
    posts = _posts(world)
    limited = [c for c in posts if c.status == 429]
    print(f"\nburst: 200 records, {len(messages)} messages, {len(posts)} POSTs, "
          f"{len(limited)} answered 429, {elapsed:.1f}s to the last record, "
          f"{len(world.sandbox.duplicates_prevented)} duplicates prevented by nonce")
    assert numbers == list(range(200))  # all, once each, in order
    assert duplicates(numbers) == {}
    assert len(messages) == 11
    for m in messages:
        assert m.content == "" and 1 <= len(m.embeds) <= 10
        # Descriptions only: a title, fields or a footer would eat the 6,000 characters.
        assert all(set(e) <= {"type", "description", "color", "flags"} for e in m.embeds)
        assert fits_one_message([e["description"] for e in m.embeds])
    # Nobody pinged, whatever the lines say (<@user>, <@&role>, @everyone).
    for m in messages:
        assert m.allowed_mentions is not None and m.allowed_mentions.get("parse") == []
        assert m.mentions == [] and m.mention_roles == [] and not m.mention_everyone
        assert m.nonce is not None  # the batch's head row id
    # Every POST of the worker went through discord.py's own rate-limit handling: the
    # sandbox's 5 per 5 s was respected (a 429 answer, if any, was retried by discord.py).
    ok = [c for c in posts if c.status == 200]
    assert len(ok) == len(messages)
    for i in range(5, len(ok)):
        assert ok[i].at - ok[i - 5].at >= 4.9, "more than 5 messages within 5 seconds"
    counts = await eventually(lambda: settled(world.container.db, 200), what="200 rows")
    assert counts == {"delivered": 200}
    gauges = await world.container.services.stores.ops.gauges()  # what /metrics reads
    assert (gauges.outbox_pending, gauges.outbox_oldest_pending_age_seconds) == (0, 0.0)
    deliveries = world.container.metrics.deliveries  # type: ignore[attr-defined]
    assert deliveries["delivered"] == len(messages)
    async with world.container.db.autocommit() as conn:
        nonces = (await conn.execute(text(
            "SELECT count(DISTINCT batch_id) FROM outbox"))).scalar_one()
        attempts = (await conn.execute(text(
            "SELECT count(*) FROM outbox_attempts WHERE http_status = 200"))).scalar_one()
    assert nonces == len(messages) and attempts == 200


async def test_a_row_queued_with_its_line_before_the_upgrade_is_delivered_as_it_is(
        world: World) -> None:
    """Rows queued before the outbox kept facts carry their rendered line ({"line",
    "record", ...}): the line goes out as written, in order with the rows of facts."""
    await setup_guild(world)
    old_line = (f"🛠️ <@{world.staff}> retried #41 (`verify` for <@{10**17}>, "
                "verification_pending → verified): resolved — “by \\(hand\\)”")
    async with world.container.db.transaction() as conn:
        await conn.execute(text(
            "INSERT INTO outbox (guild_id, kind, channel_id, lane, payload) "
            "VALUES (:g, 'mirror', :c, :lane, CAST(:p AS jsonb))"),
            {"g": world.guild.id, "c": world.log_channel, "lane": f"channel:{world.log_channel}",
             "p": json.dumps({"line": old_line, "record": "remediation", "dead_letter_id": 41,
                              "action": "retry"})})
    await enqueue_records(world.container.db, world.guild.id, [1])
    assert await eventually(lambda: settled(world.container.db, 2),
                            what="both rows delivered") == {"delivered": 2}
    assert channel_lines(world.sandbox, world.log_channel) == [
        old_line, remediation_line(record_facts(1))]


async def test_remediation_and_dead_letters_are_mirrored_one_line_each(world: World) -> None:
    await setup_guild(world, "dead_letters")
    user, entry = await replayable(world.container, world.guild.id)
    new_line = await world.sandbox.wait_for_message(
        world.log_channel, lambda m: f"Dead letter #{entry}" in m.text)
    assert (f"🟥 Dead letter #{entry}: `verify` for <@{user}> (verification_pending → "
            f"verified) retries_exhausted after 5 attempt(s), source api") in new_line.text
    answer = await world.ask(world.staff, "dlq retry", {"id": str(entry)})
    assert "resolved" in answer
    retried = await world.sandbox.wait_for_message(
        world.log_channel, lambda m: f"retried #{entry}" in m.text)
    assert (f"🛠️ <@{world.staff}> retried #{entry} (`verify` for <@{user}>, "
            "verification_pending → verified): resolved") in retried.text
    other = await dead_letter(world.container, world.guild.id)
    note = "@everyone look <@1234567890123456789> **now** (see <#1>)"
    await world.ask(world.staff, "dlq dismiss", {"id": str(other), "note": note})
    dismissed = await world.sandbox.wait_for_message(
        world.log_channel, lambda m: f"dismissed #{other}" in m.text)
    line = next(ln for ln in dismissed.lines() if f"dismissed #{other}" in ln)
    # Markdown and mentions in the note are escaped (discord.py's escape_markdown and
    # escape_mentions): shown as typed, nobody pinged.
    assert line.endswith("): dismissed — “@\u200beveryone look <@\u200b1234567890123456789> "
                         "\\*\\*now\\*\\* (see <#1>)”")
    assert not dismissed.mention_everyone and dismissed.mentions == []
    # The member's own transitions are not mirrored at this level.
    assert not any("➡️" in ln for ln in channel_lines(world.sandbox, world.log_channel))


async def test_mirror_levels_decide_what_reaches_the_log_channel(world: World) -> None:
    await setup_guild(world, "all")
    user = next_user()
    await drive(world.container, world.guild.id, user, State.JOINED)
    line = await world.sandbox.wait_for_message(world.log_channel, lambda m: "➡️" in m.text)
    assert f"➡️ <@{user}> `join` (new → joined), source bot" in line.text
    await setup_guild(world, "remediation")
    entry = await dead_letter(world.container, world.guild.id, user, Operation.KICK,
                              from_state=State.JOINED, to_state=State.KICKED)
    await world.ask(world.staff, "dlq resolve", {"id": str(entry), "note": "done by hand"})
    await world.sandbox.wait_for_message(world.log_channel,
                                         lambda m: f"resolved #{entry}" in m.text)
    lines = channel_lines(world.sandbox, world.log_channel)
    assert not any(f"Dead letter #{entry}" in ln for ln in lines)  # not at this level
    assert sum("➡️" in ln for ln in lines) == 1


async def test_retry_after_of_a_429_is_honoured_by_discord_py(world: World) -> None:
    await setup_guild(world)
    world.sandbox.inject_fault("POST", POST, 429, count=2, retry_after=0.4)
    await enqueue_records(world.container.db, world.guild.id, range(3))
    await world.sandbox.wait_until(lambda: len(record_numbers(world.sandbox, world.log_channel))
                                   == 3, timeout=10, what="3 records")
    assert await eventually(lambda: settled(world.container.db, 3)) == {"delivered": 3}
    posts = _posts(world)
    assert [c.status for c in posts] == [429, 429, 200]
    assert posts[1].at - posts[0].at >= 0.39 and posts[2].at - posts[1].at >= 0.39
    async with world.container.db.autocommit() as conn:
        attempts = (await conn.execute(text("SELECT count(*) FROM outbox_attempts"))).scalar_one()
    assert attempts == 3  # one attempt per row: the waiting happened inside discord.py


async def test_a_deleted_log_channel_dead_letters_deliveries_not_remediation(
        world: World) -> None:
    await setup_guild(world)
    await enqueue_records(world.container.db, world.guild.id, range(60))
    await world.sandbox.wait_for_message(world.log_channel)
    world.sandbox.delete_channel(world.log_channel)

    counts = await eventually(lambda: settled(world.container.db, 60),
                              what="every delivery settled")
    assert counts.get("dead_lettered", 0) > 0 and sum(counts.values()) == 60
    delivered = record_numbers(world.sandbox, world.log_channel)
    assert delivered == list(range(len(delivered))) and len(delivered) == counts["delivered"]
    async with world.container.db.autocommit() as conn:
        errors = set((await conn.execute(text(
            "SELECT last_error FROM outbox WHERE status = 'dead_lettered'"))).scalars())
    assert errors == {"404 Not Found (code 10003): Unknown Channel"}
    # Remediation keeps working; its mirror row is dead-lettered too, not stuck.
    entry = await dead_letter(world.container, world.guild.id)
    answer = await world.ask(world.staff, "dlq resolve", {"id": str(entry), "note": "ok"})
    assert answer.startswith(f"✅ resolved **#{entry}**")
    await eventually(lambda: settled(world.container.db, 62), what="the new rows settled")
    status = await world.ask(world.staff, "lifeline status")
    assert "deliveries could not be made; the newest: the log channel was deleted" in status
    assert "Deliveries pending: 0" in status
    # Staff point Lifeline at a new channel: the failures are still there (setup alone does
    # not hide them) until retried; retried, they go to the new channel, in order.
    new_channel = world.sandbox.add_channel(world.guild, "new-log").id
    await world.ask(world.owner, "lifeline setup", {
        "log_channel": new_channel, "verified_role": world.verified_role,
        "staff_role": world.staff_role})
    status = await world.ask(world.staff, "lifeline status")
    assert "could not be made" in status and f"<#{new_channel}>" in status
    await world.ask(world.staff, "dlq deliveries-retry")
    await eventually(lambda: settled(world.container.db, 63), what="the retried rows settled")
    status = await world.ask(world.staff, "lifeline status")
    assert "could not be made" not in status
    moved = record_numbers(world.sandbox, new_channel)
    assert delivered + moved == list(range(60))


async def test_a_log_channel_closed_to_the_bot_is_reported(world: World) -> None:
    await setup_guild(world)
    world.sandbox.deny_channel(world.log_channel)
    entry = await dead_letter(world.container, world.guild.id)  # its mirror row fails
    await eventually(lambda: settled(world.container.db, 1), what="the row settled")
    assert await outbox_counts(world.container.db) == {"dead_lettered": 1}
    answer = await world.ask(world.staff, "dlq dismiss", {"id": str(entry), "note": "dup"})
    assert answer.startswith(f"✅ dismissed **#{entry}**")
    status = await world.ask(world.staff, "lifeline status")
    assert ("deliveries could not be made; the newest: missing Send Messages in "
            f"<#{world.log_channel}>") in status


async def test_a_log_channel_without_embed_links_is_reported(world: World) -> None:
    """Mirror messages are embeds only: without Embed Links Discord refuses them (403)."""
    await setup_guild(world)
    world.sandbox.deny_channel(world.log_channel, permissions=Perm.EMBED_LINKS)
    await dead_letter(world.container, world.guild.id)
    await eventually(lambda: settled(world.container.db, 1), what="the row settled")
    assert await outbox_counts(world.container.db) == {"dead_lettered": 1}
    assert world.sandbox.messages(world.log_channel) == []
    status = await world.ask(world.staff, "lifeline status")
    assert f"the newest: missing Embed Links in <#{world.log_channel}>" in status
    # Granted again and set up again: the mirror works.
    world.sandbox.allow_channel(world.log_channel)
    await world.ask(world.owner, "lifeline setup", {
        "log_channel": world.log_channel, "verified_role": world.verified_role,
        "staff_role": world.staff_role})
    entry = await dead_letter(world.container, world.guild.id)
    await world.sandbox.wait_for_message(world.log_channel,
                                         lambda m: f"Dead letter #{entry}" in m.text)


async def test_retention_purges_old_closed_entries_and_keeps_their_history(
        world: World) -> None:
    await setup_guild(world)
    old_resolved = await dead_letter(world.container, world.guild.id)
    old_dismissed = await dead_letter(world.container, world.guild.id)
    old_open = await dead_letter(world.container, world.guild.id)
    new_resolved = await dead_letter(world.container, world.guild.id)
    for entry in (old_resolved, new_resolved):
        await world.container.remediation.resolve(world.guild.id, entry, world.staff, "fixed")
    await world.container.remediation.dismiss(world.guild.id, old_dismissed, world.staff, "dup")
    await eventually(lambda: settled(world.container.db, 7), what="the mirror rows delivered")
    async with world.container.db.transaction() as conn:
        await conn.execute(text(
            "UPDATE dead_letters SET updated_at = now() - interval '31 days' "
            "WHERE id = ANY(:ids)"), {"ids": [old_resolved, old_dismissed, old_open]})
        await conn.execute(text(
            "UPDATE outbox SET delivered_at = now() - interval '31 days' "
            "WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 5)"))
    outbox = world.container.services.stores.outbox
    keep_all = OutboxWorker(outbox, DiscordDeliverer(world.bot),
                            world.container.metrics, WorkerPolicy(retention_days=0),
                            dead_letters=world.container.services.stores.dead_letters)
    await keep_all.run_once()
    assert await world.count("dead_letters") == 4 and await world.count("outbox") == 7
    worker = OutboxWorker(outbox, DiscordDeliverer(world.bot),
                          world.container.metrics,
                          WorkerPolicy(retention_days=30, retention_batch=2),
                          dead_letters=world.container.services.stores.dead_letters)
    await worker.run_once()
    remaining = {e.id for e in (await world.container.remediation.page(
        world.guild.id, status="all")).items}
    assert remaining == {old_open, new_resolved}
    assert await world.count("outbox") == 2
    assert await world.count("outbox_attempts", "outbox_id NOT IN (SELECT id FROM outbox)"
                             ) == 0
    # The audit trail of purged entries stays.
    assert await world.count("remediation_actions", "dead_letter_id = ANY(:ids)",
                             ids=[old_resolved, old_dismissed]) == 2
    answer = await world.ask(world.staff, "dlq show", {"id": str(old_resolved)})
    assert "does not exist in this guild" in answer
    stats = await world.ask(world.staff, "dlq stats")
    assert "retention: 30 days" in stats
