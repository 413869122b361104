"""/dlq through the sandbox and the real discord.py bot: what staff read (list, show, stats,
autocomplete, unknown ids) and who may use /dlq and /lifeline at all."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from domain.lifecycle import Operation, State
from sandbox import CommandRefused
from tests.bot.support import ask_in, dead_letter, drive, read, replayable, setup_other_guild
from tests.bot.world import World, eventually, message_text, setup_guild
from tests.helpers import next_user

SIGNATURE = "verify/retries_exhausted/WriteConflict"


async def test_a_guild_that_is_not_set_up_is_told_to_run_setup(world: World) -> None:
    for name, options in (("dlq list", {}), ("dlq show", {"id": "1"}), ("dlq stats", {}),
                          ("dlq retry", {"id": "1"}), ("dlq reopen", {"id": "1"})):
        answer = await world.ask(world.owner, name, options)
        assert "not set up for Lifeline yet" in answer and "/lifeline setup" in answer, name


async def test_list_pages_with_previous_and_next(world: World) -> None:
    await setup_guild(world, "remediation")  # no mirror of each new entry: faster teardown
    ids = [await dead_letter(world.container, world.guild.id) for _ in range(23)]
    await dead_letter(world.container, world.guild.id, op=Operation.REJECT)  # filtered out
    handle = world.sandbox.slash_command(world.guild, world.staff, "dlq list",
                                         {"operation": "verify"})
    first = await handle.wait_message()
    assert first.ephemeral
    page1 = message_text(first)
    assert "23 in total · page 1" in page1 and "operation verify" in page1
    shown = [i for i in ids if f"**#{i}**" in page1]
    assert shown == ids[-10:]  # newest first: the ten newest
    line = next(ln for ln in page1.splitlines() if f"#{ids[-1]}" in ln)
    assert "`verify` verification_pending → verified" in line
    assert "retries_exhausted" in line and "5 attempt(s)" in line and "<@" in line
    assert first.find_component("dlq:prev")["disabled"] is True  # type: ignore[index]

    async def press(custom_id: str, expect: str) -> str:
        click = world.sandbox.press_button(handle, custom_id, world.staff)
        await click.wait_reply()
        return await world.sandbox.wait_until(
            lambda: message_text(first) if expect in message_text(first) else None,
            what=f"the list to show {expect}")

    page2 = await press("dlq:next", "page 2")
    assert [i for i in ids if f"**#{i}**" in page2] == ids[3:13]
    page3 = await press("dlq:next", "page 3")
    assert [i for i in ids if f"**#{i}**" in page3] == ids[:3]
    assert first.find_component("dlq:next")["disabled"] is True  # type: ignore[index]
    with pytest.raises(CommandRefused, match="disabled"):
        world.sandbox.press_button(handle, "dlq:next", world.staff)
    back = await press("dlq:prev", "page 2")
    assert [i for i in ids if f"**#{i}**" in back] == ids[3:13]


async def test_list_filters_by_status_and_signature_and_says_when_empty(world: World) -> None:
    await setup_guild(world)
    entry = await dead_letter(world.container, world.guild.id)
    await world.container.remediation.dismiss(world.guild.id, entry, world.staff, "dup")
    answer = await world.ask(world.staff, "dlq list", {"status": "dismissed",
                                                       "signature": SIGNATURE})
    assert f"#{entry}" in answer and "1 in total" in answer and "dismissed" in answer
    assert "No dead letters match" in await world.ask(world.staff, "dlq list")


async def test_show_gives_every_field_and_the_history(world: World) -> None:
    await setup_guild(world)
    user, entry = await replayable(world.container, world.guild.id)
    member = await world.container.transitions.get_member(world.guild.id, user)
    assert member is not None
    await world.container.remediation.dismiss(world.guild.id, entry, world.staff, "a *dup*")
    await world.container.remediation.reopen(world.guild.id, entry, world.owner)
    answer = await world.ask(world.staff, "dlq show", {"id": f"#{entry}"})
    entry_row = (await world.container.remediation.show(world.guild.id, entry))[0]
    for expected in (f"Dead letter #{entry} · open", f"<@{user}>", "`verify`",
                     "verification_pending → verified", "retries_exhausted",
                     "WriteConflict: the member changed meanwhile", "observed",
                     f"verification_pending v{member.version}", "attempts: 5",
                     "source: api",
                     f"`{SIGNATURE}`", entry_row.idempotency_key, entry_row.correlation_id,
                     "remediations: 1", "version: 3", "payload", "updated",
                     f"dismiss by <@{world.staff}> (staff): dismissed — a \\*dup\\*",
                     f"reopen by <@{world.owner}> (staff): reopened"):
        assert expected in answer, expected


async def test_unknown_and_foreign_ids_get_the_same_clear_answer(world: World) -> None:
    await setup_guild(world)
    other = await setup_other_guild(world.sandbox)
    foreign = await dead_letter(world.container, other.id)
    for name in ("dlq show", "dlq retry", "dlq reopen"):
        for entry in (str(foreign), "999999"):
            answer = await world.ask(world.staff, name, {"id": entry})
            assert f"dead letter #{entry} does not exist in this guild" in answer, name
    answer = await world.ask(world.staff, "dlq resolve", {"id": str(foreign), "note": "x"})
    assert "does not exist in this guild" in answer
    answer = await world.ask(world.staff, "dlq show", {"id": "abc"})
    assert "'abc' is not a dead-letter id" in answer
    own = await dead_letter(world.container, world.guild.id)
    arabic_indic = "".join(chr(0x0660 + int(d)) for d in str(own))  # reads as `own`
    for typed in ("²", "①", arabic_indic):  # digits to str.isdigit(), not to Discord ids
        answer = await world.ask(world.staff, "dlq show", {"id": typed})
        assert f"{typed!r} is not a dead-letter id" in answer, typed
    # The foreign entry was not touched.
    entry, history = await world.container.remediation.show(other.id, foreign)
    assert entry.status == "open" and history == []

async def test_stats_counts_signatures_oldest_and_retention(world: World) -> None:
    await setup_guild(world)
    for _ in range(3):
        await dead_letter(world.container, world.guild.id)
    closed = await dead_letter(world.container, world.guild.id, op=Operation.REJECT)
    await world.container.remediation.resolve(world.guild.id, closed, world.staff, "done")
    async with world.container.db.transaction() as conn:
        await conn.execute(text("UPDATE dead_letters SET created_at = now() - interval "
                                "'2 hours' WHERE id = (SELECT min(id) FROM dead_letters)"))
    answer = await world.ask(world.staff, "dlq stats")
    assert "open **3**" in answer and "resolved **1**" in answer and "dismissed **0**" in answer
    assert f"`{SIGNATURE}` open 3 / 3" in answer
    assert "`reject/retries_exhausted/WriteConflict` open 0 / 1" in answer
    assert "oldest open: 2h" in answer
    assert "retention: 30 days" in answer


async def test_autocomplete_is_scoped_to_the_guild_and_to_open_entries(world: World) -> None:
    await setup_guild(world)
    other = await setup_other_guild(world.sandbox)
    mine = [await dead_letter(world.container, world.guild.id) for _ in range(3)]
    closed = await dead_letter(world.container, world.guild.id)
    await world.container.remediation.dismiss(world.guild.id, closed, world.staff, "no")
    theirs = [await dead_letter(world.container, other.id, op=Operation.KICK,
                                from_state=State.JOINED, to_state=State.KICKED)
              for _ in range(3)]
    choices = await world.sandbox.autocomplete(world.guild, world.staff, "dlq retry",
                                               focused="id")
    assert [c["value"] for c in choices] == [str(i) for i in reversed(mine)]  # newest first
    assert choices[0]["name"].startswith(f"#{mine[-1]} verify verification_pending→verified")
    typed = await world.sandbox.autocomplete(world.guild, world.staff, "dlq show",
                                             {"id": str(mine[0])}, focused="id")
    assert [c["value"] for c in typed] == [str(mine[0])]
    sigs = await world.sandbox.autocomplete(world.guild, world.staff, "dlq retry-group",
                                            focused="signature")
    assert [c["value"] for c in sigs] == [SIGNATURE] and "(3 open)" in sigs[0]["name"]
    # The other guild's staff (its owner) sees only its own entries and signatures.
    theirs_seen = await world.sandbox.autocomplete(other, other.owner_id, "dlq dismiss",
                                                   focused="id")
    assert [c["value"] for c in theirs_seen] == [str(i) for i in reversed(theirs)]
    their_sigs = await world.sandbox.autocomplete(other, other.owner_id, "dlq retry-group",
                                                  focused="signature")
    assert [c["value"] for c in their_sigs] == ["kick/retries_exhausted/WriteConflict"]
    # Typing another guild's id finds nothing.
    foreign = await world.sandbox.autocomplete(world.guild, world.staff, "dlq show",
                                               {"id": str(theirs[0])}, focused="id")
    assert foreign == []


async def test_non_staff_is_refused_even_when_the_guild_grants_the_command(
        world: World) -> None:
    await setup_guild(world)
    entry = await dead_letter(world.container, world.guild.id)
    outsider = world.sandbox.member_join(world.guild, None, "outsider", pending=False).user.id
    with pytest.raises(CommandRefused, match="hidden"):
        world.sandbox.slash_command(world.guild, outsider, "dlq list")
    world.sandbox.grant_command(world.guild, "dlq", outsider)
    for name, options in (("dlq list", {}), ("dlq show", {"id": str(entry)}),
                          ("dlq retry", {"id": str(entry)}),
                          ("dlq retry-group", {"signature": SIGNATURE}),
                          ("dlq resolve", {"id": str(entry), "note": "mine now"}),
                          ("dlq dismiss", {"id": str(entry), "note": "mine now"}),
                          ("dlq reopen", {"id": str(entry)}), ("dlq stats", {}),
                          ("dlq delete", {"id": str(entry), "note": "mine now"}),
                          ("dlq retry-all", {}), ("dlq history", {"id": str(entry)})):
        handle = world.sandbox.slash_command(world.guild, outsider, name, options)
        answer = await read(handle)
        assert "this command is for staff" in answer, name
        assert handle.messages[0].ephemeral
    assert await world.sandbox.autocomplete(world.guild, outsider, "dlq show",
                                            focused="id") == []
    assert await world.count("remediation_actions") == 0


async def test_staff_role_without_manage_server_may_use_dlq(world: World) -> None:
    # The staff member holds the configured Staff role (no permissions of its own).
    await setup_guild(world)
    user = next_user()
    await drive(world.container, world.guild.id, user, State.JOINED)
    entry = await dead_letter(world.container, world.guild.id, user, Operation.KICK,
                              from_state=State.JOINED, to_state=State.KICKED)
    answer = await ask_in(world.sandbox, world.guild, world.staff, "dlq show", {"id": str(entry)})
    assert f"Dead letter #{entry}" in answer
    await eventually(lambda: world.count("dead_letters"), what="the entry")


async def test_id_autocomplete_finds_an_older_entry_by_the_digits_typed(world: World) -> None:
    await setup_guild(world, "remediation")
    ids = [await dead_letter(world.container, world.guild.id) for _ in range(30)]
    newest = await world.sandbox.autocomplete(world.guild, world.staff, "dlq resolve",
                                              focused="id")
    assert [c["value"] for c in newest] == [str(i) for i in reversed(ids)][:25]
    oldest = str(ids[0])
    typed = await world.sandbox.autocomplete(world.guild, world.staff, "dlq resolve",
                                             {"id": f"#{oldest}"}, focused="id")
    values = [c["value"] for c in typed]
    assert oldest in values and all(v.startswith(oldest) for v in values)
    assert values == sorted(values, key=int, reverse=True)  # newest first
    assert await world.sandbox.autocomplete(world.guild, world.staff, "dlq resolve",
                                            {"id": "abc"}, focused="id") == []


async def test_lifeline_setup_needs_manage_server_and_status_needs_setup(world: World) -> None:
    answer = await world.ask(world.owner, "lifeline status")
    assert "not set up for Lifeline yet" in answer
    # The staff role was granted /lifeline, but setting up needs Manage Server.
    answer = await world.ask(world.staff, "lifeline setup", {
        "log_channel": world.log_channel, "verified_role": world.verified_role})
    assert "/lifeline setup needs the Manage Server permission" in answer
    assert await world.container.guilds.get(world.guild.id) is None
    await setup_guild(world)
    await dead_letter(world.container, world.guild.id)
    status = await world.ask(world.staff, "lifeline status")
    assert f"Log channel: <#{world.log_channel}>" in status
    assert f"Staff roles: <@&{world.staff_role}>" in status
    assert "Mirror level: dead_letters" in status and "open 1" in status
    assert "could not be made" not in status


async def test_every_command_declares_the_guild_context(world: World) -> None:
    """Discord's interaction contexts (0 = in a server), not only the deprecated
    dm_permission: no Lifeline command is offered in DMs or group DMs."""
    synced = world.sandbox.commands()
    assert {c["name"] for c in synced} >= {"dlq", "member", "lifeline", "verify"}
    for command in synced:
        assert command.get("contexts") == [0], (command["name"], command.get("contexts"))
