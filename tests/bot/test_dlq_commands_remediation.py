"""/dlq through the sandbox and the real discord.py bot: what staff do to an entry (retry,
retry-group, a stale retry, resolve, dismiss, reopen, notes) and every refusal of it."""

from __future__ import annotations

import asyncio

import pytest

from domain.commands import TransitionCommand
from domain.lifecycle import Operation, Source
from domain.metrics import CountingMetrics
from domain.persistence.faults import Point
from sandbox import CommandRefused
from tests.bot.support import dead_letter, hopeless, read, replayable
from tests.bot.world import World, message_text, setup_guild

SIGNATURE = "verify/retries_exhausted/WriteConflict"


async def test_retry_resolves_and_answers_with_the_outcome(world: World) -> None:
    await setup_guild(world)
    user, entry = await replayable(world.container, world.guild.id)
    handle = world.sandbox.slash_command(world.guild, world.staff, "dlq retry",
                                         {"id": str(entry)})
    answer = await read(handle)
    assert f"✅ #{entry} resolved: replayed and applied" in answer
    assert handle.response_type == 5  # deferred ("thinking") first, then the outcome
    assert await world.state(user) == "verified"
    found, history = await world.container.remediation.show(world.guild.id, entry)
    assert found.status == "resolved" and [h.action for h in history] == ["retry"]


async def test_retry_that_fails_again_answers_with_the_new_error(world: World) -> None:
    await setup_guild(world)
    entry = await hopeless(world.container, world.guild.id)
    answer = await world.ask(world.staff, "dlq retry", {"id": str(entry)})
    assert f"❌ #{entry} is still open" in answer and "'verify' is not allowed" in answer
    found, history = await world.container.remediation.show(world.guild.id, entry)
    assert found.status == "open" and history[0].outcome == "failed"
    assert found.error_type == "TransitionNotAllowed"


async def test_two_staff_retrying_one_entry_at_once_replay_it_once(world: World) -> None:
    await setup_guild(world)
    second_staff = world.sandbox.member_join(world.guild, None, "staffer-2", pending=False,
                                             roles=[world.staff_role]).user.id
    user, entry = await replayable(world.container, world.guild.id)
    faults = world.container.services.stores.faults
    assert faults is not None
    # The first retry to claim the entry is held at its read of the member (the fault
    # seam) while the second retry arrives.
    gate = faults.hold(Point.MEMBERS_READ, when=lambda hit: hit.user_id == user)
    metrics = world.container.metrics
    assert isinstance(metrics, CountingMetrics)

    def verify_replays() -> int:  # every TransitionService.apply of `verify` is counted
        return sum(n for (op, _, _), n in metrics.transitions.items() if op == "verify")

    before = verify_replays()
    try:
        first = world.sandbox.slash_command(world.guild, world.staff, "dlq retry",
                                            {"id": str(entry)})
        await asyncio.wait_for(gate.reached.wait(), 10)
        second = world.sandbox.slash_command(world.guild, second_staff, "dlq retry",
                                             {"id": str(entry)})
        # Whichever claimed the entry is held; the other is answered at once.
        loser_text = await world.sandbox.wait_until(
            lambda: next((message_text(m) for h in (first, second) for m in h.messages
                          if not m.loading), None), what="the losing retry's answer")
        assert f"dead letter #{entry} is already being retried" in loser_text
        gate.release()
        texts = [await read(first), await read(second)]
    finally:
        gate.release()
    assert sorted("resolved" in t for t in texts) == [False, True]
    assert verify_replays() - before == 1
    assert await world.count("remediation_actions", "dead_letter_id = :id", id=entry) == 1
    assert await world.count("member_transitions", "user_id = :u AND operation = 'verify'",
                             u=user) == 1


async def test_retry_group_asks_then_reports_progress_and_counts(world: World) -> None:
    await setup_guild(world)
    good = [await replayable(world.container, world.guild.id) for _ in range(3)]
    bad = await hopeless(world.container, world.guild.id)
    other_sig = await dead_letter(world.container, world.guild.id, op=Operation.REJECT)
    handle = world.sandbox.slash_command(world.guild, world.staff, "dlq retry-group",
                                         {"signature": SIGNATURE})
    question = await handle.wait_message()
    assert f"Retry **4** open entries with signature `{SIGNATURE}`?" in question.content
    assert await world.count("remediation_actions") == 0  # nothing before the click
    click = world.sandbox.press_button(handle, "dlq:confirm", world.staff)
    await click.wait_reply()
    done = await world.sandbox.wait_until(
        lambda: question.content if question.content.startswith("Done") else None,
        timeout=15, what="the group retry to finish")
    assert done == "Done: 4 retried, ✅ 3 resolved, ❌ 1 failed"
    assert question.components == []  # the buttons are gone
    edits = [str(c.json.get("content")) for c in world.sandbox.calls
             if c.method == "PATCH" and c.path.endswith("/messages/@original")]
    assert any(e.startswith("Retrying ") for e in edits), edits  # progress was shown
    for user, _ in good:
        assert await world.state(user) == "verified"
    statuses = {e.id: e.status for e in (await world.container.remediation.page(
        world.guild.id, status="all", limit=10)).items}
    assert statuses[bad] == "open" and statuses[other_sig] == "open"
    assert all(statuses[e] == "resolved" for _, e in good)


async def test_a_stale_retry_shows_what_changed_and_asks_before_replaying(
        world: World) -> None:
    """Staff rejected the member and reopened them after the `verify` entry was recorded:
    `/dlq retry` shows what changed and what the replay would do, and replays only on
    "Replay anyway" (audited as forced); "Cancel" writes nothing."""
    await setup_guild(world)
    users = [await replayable(world.container, world.guild.id) for _ in range(2)]
    for user, _ in users:
        for op in (Operation.REJECT, Operation.REOPEN):
            await world.container.services.staff_transitions.apply(TransitionCommand(
                guild_id=world.guild.id, user_id=user, operation=op, source=Source.STAFF,
                actor_id=world.owner, idempotency_key=f"{op.value}-{user}"))
    (kept, kept_entry), (replayed, replayed_entry) = users
    handle = world.sandbox.slash_command(world.guild, world.staff, "dlq retry",
                                         {"id": str(kept_entry)})
    question = await handle.wait_message()
    for expected in (f"#{kept_entry} is stale", "**verification_pending** (version 5)",
                     "(version 7), after 2 transition(s)", "`reopen`", f"<@{world.owner}>",
                     "would move the member verification_pending → verified"):
        assert expected in question.content, expected
    click = world.sandbox.press_button(handle, "dlq:cancel", world.staff)
    await click.wait_reply()
    assert question.content == "Not replayed." and question.components == []
    assert await world.state(kept) == "verification_pending"
    assert await world.count("remediation_actions") == 0

    handle = world.sandbox.slash_command(world.guild, world.staff, "dlq retry",
                                         {"id": str(replayed_entry)})
    question = await handle.wait_message()
    assert "Replay anyway" in str(question.components)
    click = world.sandbox.press_button(handle, "dlq:confirm", world.staff)
    await click.wait_reply()
    await world.sandbox.wait_until(lambda: question.content.startswith("✅"), timeout=10,
                                   what="the forced replay's answer")
    assert await world.state(replayed) == "verified"
    _, history = await world.container.remediation.show(world.guild.id, replayed_entry)
    assert history[-1].note is not None and history[-1].note.startswith("forced")


async def test_retry_group_cancel_and_nothing_to_retry(world: World) -> None:
    await setup_guild(world)
    await hopeless(world.container, world.guild.id)
    handle = world.sandbox.slash_command(world.guild, world.staff, "dlq retry-group",
                                         {"signature": SIGNATURE})
    question = await handle.wait_message()
    click = world.sandbox.press_button(handle, "dlq:cancel", world.staff)
    await click.wait_reply()  # the click itself is answered, not left to fail
    await world.sandbox.wait_until(lambda: question.content == "Nothing retried.",
                                   what="the cancelled question")
    assert await world.count("remediation_actions") == 0
    answer = await world.ask(world.staff, "dlq retry-group", {"signature": "kick/x/y"})
    assert "No open entries with signature `kick/x/y`" in answer


async def test_resolve_dismiss_reopen_and_their_refusals(world: World) -> None:
    await setup_guild(world)
    a = await dead_letter(world.container, world.guild.id)
    b = await dead_letter(world.container, world.guild.id)
    answer = await world.ask(world.staff, "dlq resolve", {"id": str(a), "note": "fixed by hand"})
    assert answer.startswith(f"✅ resolved **#{a}**") and "resolved" in answer
    answer = await world.ask(world.staff, "dlq resolve", {"id": str(a), "note": "again"})
    assert f"dead letter #{a} is resolved; it cannot be resolved" in answer
    answer = await world.ask(world.staff, "dlq dismiss", {"id": str(b), "note": "duplicate"})
    assert answer.startswith(f"✅ dismissed **#{b}**")
    for name, options in (("dlq retry", {"id": str(b)}),
                          ("dlq resolve", {"id": str(b), "note": "x"}),
                          ("dlq dismiss", {"id": str(b), "note": "x"})):
        answer = await world.ask(world.staff, name, options)
        assert f"dead letter #{b} is dismissed; reopen it before you" in answer, name
    answer = await world.ask(world.staff, "dlq reopen", {"id": str(b)})
    assert answer.startswith(f"✅ reopened **#{b}**") and "open" in answer
    answer = await world.ask(world.staff, "dlq reopen", {"id": str(b)})
    assert f"dead letter #{b} is already open" in answer
    answer = await world.ask(world.staff, "dlq reopen", {"id": str(a),
                                                         "note": "the fix did not hold"})
    assert answer.startswith(f"✅ reopened **#{a}**")
    statuses = [h.action for h in (await world.container.remediation.show(
        world.guild.id, b))[1]]
    assert statuses == ["dismiss", "reopen"]
    reopened = (await world.container.remediation.show(world.guild.id, a))[1][-1]
    assert (reopened.action, reopened.note) == ("reopen", "the fix did not hold")
    # Every answer was ephemeral: only the staff member who asked saw it.
    shown = [m for h in world.sandbox.interaction_handles for m in h.messages]
    assert len(shown) >= 9 and all(m.ephemeral for m in shown)


async def test_notes_must_be_1_to_1000_characters(world: World) -> None:
    await setup_guild(world)
    entry = await dead_letter(world.container, world.guild.id)
    # Blank after trimming: Discord lets it through (length 3), the bot refuses it.
    answer = await world.ask(world.staff, "dlq resolve", {"id": str(entry), "note": "   "})
    assert "a note of 1 to 1000 characters is required (got 0)" in answer
    # Too long or empty: Discord itself refuses the option (max_length / min_length).
    for note in ("x" * 1001, ""):
        with pytest.raises(CommandRefused, match=r"longer than 1000|shorter than 1"):
            world.sandbox.slash_command(world.guild, world.staff, "dlq dismiss",
                                        {"id": str(entry), "note": note})
    assert await world.count("remediation_actions") == 0
    answer = await world.ask(world.staff, "dlq dismiss", {"id": str(entry), "note": "y" * 1000})
    assert answer.startswith(f"✅ dismissed **#{entry}**")
    found, _ = await world.container.remediation.show(world.guild.id, entry)
    assert found.resolution_note == "y" * 1000
