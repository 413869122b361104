"""Failed side effects are remediable: a role change or a log line Discord refused stays a
delivery staff can see (with its cause in words and its attempts), fix and retry; a retried
role change is decided again from the member's current state; log lines go out, in their
order, once the channel works again. The real bot against the sandbox."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text

from domain.commands import TransitionCommand
from domain.lifecycle import Source, State
from sandbox import Perm
from tests.bot.support import channel_lines, enqueue_records, record_numbers
from tests.bot.world import World, eventually, setup_guild
from tests.helpers import next_user, path_to

NOTICE = "could not be delivered"


async def _setup(world: World, verified_role: int, log_channel: int | None = None) -> None:
    await world.command(world.owner, "lifeline setup", {
        "log_channel": log_channel or world.log_channel, "verified_role": verified_role,
        "staff_role": world.staff_role, "mirror_level": "dead_letters"})


async def _failed(world: World, kind: str, n: int = 1) -> list[int]:
    async def check() -> list[int] | None:
        async with world.container.db.autocommit() as conn:
            ids = list((await conn.execute(text(
                "SELECT id FROM outbox WHERE kind = CAST(:k AS outbox_kind) AND status IN "
                "('failed', 'dead_lettered') ORDER BY id"), {"k": kind})).scalars())
        return ids if len(ids) >= n else None
    return await eventually(check, what=f"{n} failed {kind} deliveries")


async def _verified_member(world: World, name: str) -> int:
    """A member who joined through Discord and was then verified (as the bot would)."""
    user = next_user()
    world.sandbox.member_join(world.guild, user, name, pending=False)
    await world.wait_state(user, "joined")
    for op in path_to(State.VERIFIED)[1:]:
        await world.container.transitions.apply(TransitionCommand(
            guild_id=world.guild.id, user_id=user, operation=op, source=Source.BOT,
            idempotency_key=f"test:{user}:{op.value}"))
    return user


def _grants(world: World, user: int, role: int) -> list[Any]:
    return [c for c in world.sandbox.role_changes if c.user_id == user and c.role_id == role
            and c.action == "add" and c.source == "rest"]


async def test_a_role_grant_refused_for_the_role_order_is_explained_then_retried(
        world: World) -> None:
    high = world.sandbox.add_role(world.guild, "Verified (above Lifeline)", position=50)
    await _setup(world, high.id)
    user = await _verified_member(world, "alice")
    [delivery] = await _failed(world, "role_sync")
    assert _grants(world, user, high.id) == []

    listed = await world.ask(world.staff, "dlq deliveries")
    assert f"D{delivery}" in listed
    assert "Lifeline's role is below the verified role: move it above" in listed
    # Every staff answer says so while it lasts (a broken log channel cannot say it).
    assert NOTICE in await world.ask(world.staff, "dlq stats")
    shown = await world.ask(world.staff, "dlq delivery", {"delivery": f"D{delivery}"})
    assert "HTTP 403 code 50013" in shown and "final" in shown

    # Staff fix it (a role Lifeline can assign), then retry: the grant is decided again,
    # for the role as set now.
    await _setup(world, world.verified_role)
    answer = await world.ask(world.staff, "dlq delivery-retry", {"delivery": f"d{delivery}"})
    assert f"D{delivery} queued again" in answer
    await world.sandbox.wait_until(lambda: _grants(world, user, world.verified_role),
                                   timeout=10, what="the verified role granted")
    assert NOTICE not in await world.ask(world.staff, "dlq stats")
    timeline = await world.ask(world.staff, "dlq delivery", {"delivery": f"D{delivery}"})
    assert timeline.index("HTTP 403") < timeline.index("queued again: attempts count from 1") \
        < timeline.index("delivered · final · HTTP 204"), timeline
    assert "Cause" not in timeline and "once the cause is fixed" not in timeline
    async with world.container.db.autocommit() as conn:
        audit = (await conn.execute(text(
            "SELECT actor_id, source::text, action, outcome, status_before, status_after "
            "FROM remediation_actions WHERE target_kind = 'delivery' AND target_id = :id"),
            {"id": delivery})).all()
    assert [tuple(a) for a in audit] == [(world.staff, "staff", "retry", "requeued",
                                          "dead_lettered", "pending")]
    # The retry is mirrored.
    await world.sandbox.wait_for_message(
        world.log_channel, lambda m: f"retried failed deliveries D{delivery}" in m.text)


async def test_a_role_grant_the_member_no_longer_needs_is_skipped_as_stale(
        world: World) -> None:
    high = world.sandbox.add_role(world.guild, "Verified (above Lifeline)", position=50)
    await _setup(world, high.id)
    user = await _verified_member(world, "bob")
    [grant] = await _failed(world, "role_sync")
    answer = await world.ask(world.staff, "member reverify", {"user": user})
    assert "verified → verification_pending" in answer
    # Its removal failed too (same role order); both are now failed.
    grant_and_removal = await _failed(world, "role_sync", 2)
    await _setup(world, world.verified_role)
    answer = await world.ask(world.staff, "dlq delivery-retry", {"delivery": f"D{grant}"})
    assert "no longer applies" in answer
    answer = await world.ask(world.staff, "dlq deliveries-retry")
    assert "1 of 1 failed deliveries queued again" in answer
    await world.sandbox.wait_until(
        lambda: [c for c in world.sandbox.role_changes if c.user_id == user
                 and c.action == "remove" and c.source == "rest"],
        timeout=10, what="the removal, decided again")
    assert _grants(world, user, world.verified_role) == []  # never granted: stale
    async with world.container.db.autocommit() as conn:
        statuses = dict((await conn.execute(text(
            "SELECT id, status::text FROM outbox WHERE id = ANY(:ids)"),
            {"ids": grant_and_removal})).all())
    assert statuses[grant] == "skipped"


async def test_log_lines_behind_a_missing_permission_go_out_in_order_once_fixed(
        world: World) -> None:
    await setup_guild(world)
    world.sandbox.deny_channel(world.log_channel, world.guild, permissions=Perm.EMBED_LINKS)
    await enqueue_records(world.container.db, world.guild.id, range(3))
    await enqueue_records(world.container.db, world.guild.id, range(3, 6))
    await _failed(world, "mirror", 2)
    listed = await world.ask(world.staff, "dlq deliveries")
    assert f"missing Embed Links in <#{world.log_channel}>" in listed
    assert record_numbers(world.sandbox, world.log_channel) == []
    world.sandbox.allow_channel(world.log_channel, world.guild)
    answer = await world.ask(world.staff, "dlq deliveries-retry")
    assert "queued again" in answer
    await world.sandbox.wait_until(lambda: len(record_numbers(
        world.sandbox, world.log_channel)) >= 6, timeout=15, what="the 6 lines")
    assert record_numbers(world.sandbox, world.log_channel) == list(range(6))
    await world.sandbox.wait_until(lambda: any(
        "retried failed deliveries" in line
        for line in channel_lines(world.sandbox, world.log_channel)), timeout=10,
        what="the retry's own line, after them")


async def test_log_lines_of_a_deleted_channel_go_to_the_new_one(world: World) -> None:
    await setup_guild(world)
    world.sandbox.delete_channel(world.log_channel, world.guild)
    await enqueue_records(world.container.db, world.guild.id, range(4))
    line, *_ = await _failed(world, "mirror", 4)
    shown = await world.ask(world.staff, "dlq delivery", {"delivery": str(line)})
    assert "the log channel was deleted: choose another with /lifeline setup" in shown
    assert re.search(r"HTTP 404 code 10003", shown)
    new = world.sandbox.add_channel(world.guild, "mod-log-2")
    await _setup(world, world.verified_role, log_channel=new.id)
    await world.ask(world.staff, "dlq deliveries-retry", {"kind": "mirror"})
    await world.sandbox.wait_until(lambda: len(record_numbers(world.sandbox, new.id)) >= 4,
                                   timeout=15, what="the lines in the new channel")
    assert record_numbers(world.sandbox, new.id) == [0, 1, 2, 3]
