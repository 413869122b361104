"""/dlq delete, retry-all, history, the unresolved-by-default list, the stack trace in
show and the stats total, through the sandbox and the real discord.py bot."""

from __future__ import annotations

from domain.lifecycle import Operation
from domain.transitions import WriteConflict
from tests.bot.support import dead_letter, hopeless, read, replayable
from tests.bot.world import World, setup_guild


async def _claimed(world: World, entry: int) -> None:
    """Someone else is retrying the entry (a fresh claim)."""
    store = world.container.services.stores.dead_letters
    assert await store.claim(world.guild.id, entry, 300) is not None


async def test_delete_asks_first_then_deletes_and_the_history_stays(world: World) -> None:
    await setup_guild(world)
    entry = await dead_letter(world.container, world.guild.id)
    blank = await world.ask(world.staff, "dlq delete", {"id": str(entry), "note": "  "})
    assert "a note of 1 to 1000 characters is required" in blank

    handle = world.sandbox.slash_command(world.guild, world.staff, "dlq delete",
                                         {"id": str(entry), "note": "duplicate"})
    question = await handle.wait_message()
    assert f"Delete **#{entry}**" in question.content and "history is kept" in question.content
    assert "Delete" in str(question.components) and "Cancel" in str(question.components)
    click = world.sandbox.press_button(handle, "dlq:cancel", world.staff)
    await click.wait_reply()
    await world.sandbox.wait_until(lambda: question.content == "Not deleted.",
                                   what="the cancelled question")
    assert await world.count("dead_letters") == 1
    assert await world.count("remediation_actions") == 0

    handle = world.sandbox.slash_command(world.guild, world.staff, "dlq delete",
                                         {"id": f"#{entry}", "note": "duplicate"})
    question = await handle.wait_message()
    click = world.sandbox.press_button(handle, "dlq:confirm", world.staff)
    await click.wait_reply()
    await world.sandbox.wait_until(lambda: question.content.startswith("🗑️"),
                                   what="the deletion's answer")
    assert question.content == f"🗑️ deleted #{entry} (it was open); its history is kept"
    assert question.components == []
    assert await world.count("dead_letters") == 0

    history = await world.ask(world.staff, "dlq history", {"id": str(entry)})
    assert f"History of dead letter #{entry}" in history
    assert f"**delete** by <@{world.staff}> (staff): deleted · open → deleted — duplicate" \
        in history
    gone = await world.ask(world.staff, "dlq show", {"id": str(entry)})
    assert "does not exist in this guild" in gone


async def test_an_entry_being_retried_is_not_deleted(world: World) -> None:
    await setup_guild(world)
    entry = await dead_letter(world.container, world.guild.id)
    await _claimed(world, entry)
    handle = world.sandbox.slash_command(world.guild, world.staff, "dlq delete",
                                         {"id": str(entry), "note": "cleanup"})
    question = await handle.wait_message()
    click = world.sandbox.press_button(handle, "dlq:confirm", world.staff)
    await click.wait_reply()
    await world.sandbox.wait_until(lambda: question.content.startswith("❌"),
                                   what="the refusal")
    assert "is being retried" in question.content
    assert await world.count("dead_letters") == 1
    assert await world.count("remediation_actions") == 0


async def test_retry_all_previews_asks_then_reports_progress_and_counts(world: World) -> None:
    await setup_guild(world)
    good = [await replayable(world.container, world.guild.id) for _ in range(3)]
    bad = await hopeless(world.container, world.guild.id)
    busy = await dead_letter(world.container, world.guild.id)
    await _claimed(world, busy)
    other_op = await dead_letter(world.container, world.guild.id, op=Operation.REJECT)

    nothing = await world.ask(world.staff, "dlq retry-all", {"operation": "kick"})
    assert nothing == "No unresolved entries match (operation `kick`)."
    handle = world.sandbox.slash_command(world.guild, world.staff, "dlq retry-all",
                                         {"operation": "verify"})
    question = await handle.wait_message()
    assert question.content == "Retry **5** unresolved entries (operation `verify`)?"
    assert await world.count("remediation_actions") == 0  # nothing before the click
    click = world.sandbox.press_button(handle, "dlq:confirm", world.staff)
    await click.wait_reply()
    done = await world.sandbox.wait_until(
        lambda: question.content if question.content.startswith("Done") else None,
        timeout=15, what="the retry-all to finish")
    assert done == ("Done: 5 matched, ✅ 3 resolved, ❌ 1 failed, 1 skipped (being "
                    "retried, or taken by someone else)")
    assert question.components == []
    edits = [str(c.json.get("content")) for c in world.sandbox.calls
             if c.method == "PATCH" and c.path.endswith("/messages/@original")]
    assert any(e.startswith("Retrying ") for e in edits), edits  # progress was shown
    for user, _ in good:
        assert await world.state(user) == "verified"
    statuses = {e.id: e.status for e in (await world.container.remediation.page(
        world.guild.id, status="all")).items}
    assert (statuses[bad], statuses[busy], statuses[other_op]) == ("open", "retrying", "open")

    handle = world.sandbox.slash_command(world.guild, world.staff, "dlq retry-all", {})
    question = await handle.wait_message()
    assert question.content == "Retry **3** unresolved entries?"
    click = world.sandbox.press_button(handle, "dlq:cancel", world.staff)
    await click.wait_reply()
    await world.sandbox.wait_until(lambda: question.content == "Nothing retried.",
                                   what="the cancelled question")


async def test_list_shows_unresolved_by_default_and_pages_oldest_first(world: World) -> None:
    await setup_guild(world)
    ids = [await dead_letter(world.container, world.guild.id) for _ in range(3)]
    await world.container.remediation.dismiss(world.guild.id, ids[0], world.staff, "noise")
    await _claimed(world, ids[1])
    default = await world.ask(world.staff, "dlq list")
    assert f"**#{ids[0]}**" not in default
    assert f"**#{ids[1]}**" in default and f"**#{ids[2]}**" in default
    assert "2 in total · page 1 · status unresolved" in default
    assert default.index(f"#{ids[2]}") < default.index(f"#{ids[1]}")  # newest first
    everything = await world.ask(world.staff, "dlq list", {"status": "all",
                                                           "order": "oldest"})
    assert "3 in total" in everything and "oldest first" in everything
    positions = [everything.index(f"**#{i}**") for i in ids]
    assert positions == sorted(positions)


async def test_show_ends_with_the_stack_trace_and_stats_has_the_total(world: World) -> None:
    await setup_guild(world)
    # A long trace (a chain of causes): more than an embed field holds.
    error: BaseException | None = None
    for step in range(30):
        try:
            raise WriteConflict(f"cause {step}" if step < 29 else
                                "the member changed meanwhile") from error
        except WriteConflict as exc:
            error = exc
    assert error is not None
    entry = await dead_letter(world.container, world.guild.id, error=error)
    stored = (await world.container.remediation.get(world.guild.id, entry)).stack_trace
    assert stored is not None and len(stored) > 1024
    shown = await read(world.sandbox.slash_command(world.guild, world.staff, "dlq show",
                                                   {"id": str(entry)}))
    assert f"of {len(stored.rstrip())} characters)" in shown and "stack trace (last" in shown
    # The end of the trace is what is shown: the error itself.
    assert shown.rstrip("`\n").endswith("WriteConflict: the member changed meanwhile")
    await world.container.remediation.dismiss(world.guild.id, entry, world.staff, "seen")
    await dead_letter(world.container, world.guild.id)
    stats = await world.ask(world.staff, "dlq stats")
    assert "total **2** · open **1**" in stats and "dismissed **1**" in stats
