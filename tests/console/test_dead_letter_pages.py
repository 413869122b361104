"""The console's dead-letter pages over the real bot: staff only (404 otherwise, like an
unknown id), filters, one entry with its payload, stack trace and history; actions through
RemediationService with source `console` and the logged-in user as actor, audited, mirrored,
escaped; a stale retry needs "Replay anyway"."""

from __future__ import annotations

from sqlalchemy import text

from bot.console.security import SESSION_COOKIE
from domain.console_sessions import ConsoleSessions
from domain.lifecycle import Operation, Source, State
from tests.bot.support import dead_letter, replayable
from tests.bot.world import World, setup_guild
from tests.console.support import BASE, console_client
from tests.helpers import cmd

ORIGIN = {"origin": BASE}


async def _login(world: World, http: object, user_id: int, name: str) -> str:
    new = await ConsoleSessions(world.container.services.stores.console_sessions).login(
        user_id, name)
    http.cookies.set(SESSION_COOKIE, new.cookie_value)  # type: ignore[attr-defined]
    return new.csrf_token


async def test_staff_list_filter_and_open_an_entry_others_get_404(world: World) -> None:
    await setup_guild(world)
    verify = await dead_letter(world.container, world.guild.id)
    leave = await dead_letter(world.container, world.guild.id, op=Operation.LEAVE,
                              from_state=State.JOINED, to_state=State.LEFT_GUILD)
    base = f"/console/g/{world.guild.id}/dead-letters"
    async with console_client(world) as http:
        await _login(world, http, world.staff, "staffer")
        page = (await http.get(base)).text
        assert f"#{verify}" in page and f"#{leave}" in page
        page = (await http.get(base, params={"operation": "leave"})).text
        assert f"#{leave}" in page and f"#{verify}" not in page
        assert (await http.get(base, params={"status": "lost"})).status_code == 400
        for bad in ({"source": "mail"}, {"member": "١٢"}, {"member": "0"}):
            assert (await http.get(base, params=bad)).status_code == 400, bad
        page = (await http.get(base, params={"source": "api"})).text
        assert f"#{verify}" in page and f"#{leave}" in page  # dead_letter() records api
        assert f"#{verify}" not in (await http.get(base, params={"source": "bot"})).text
        shown = await http.get(f"{base}/{verify}")
        assert shown.status_code == 200 and "Payload" in shown.text
        assert "user_id&#34;: &#34;" in shown.text  # the payload (escaped), ids as strings
        # Not staff: the same 404 as a server that does not exist.
        outsider = world.sandbox.member_join(world.guild, None, "outsider").user.id
        await _login(world, http, outsider, "outsider")
        for path in (base, f"{base}/{verify}", "/console/g/123456789/dead-letters"):
            answer = await http.get(path)
            assert answer.status_code == 404, path
            assert "There is no such server in your console." in answer.text


async def test_resolve_is_audited_as_the_console_user_escaped_and_mirrored(
        world: World) -> None:
    await setup_guild(world)
    entry = await dead_letter(world.container, world.guild.id)
    url = f"/console/g/{world.guild.id}/dead-letters/{entry}"
    note = "<script>alert(1)</script> fixed by hand"
    async with console_client(world) as http:
        csrf = await _login(world, http, world.staff, "staffer")
        refused = await http.post(f"{url}/resolve", data={"note": note}, headers=ORIGIN)
        assert refused.status_code == 403
        done = await http.post(f"{url}/resolve", data={"note": note, "csrf": csrf},
                               headers=ORIGIN)
        assert done.status_code == 200 and "Resolved." in done.text
        assert "<script>alert(1)</script>" not in done.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in done.text
    async with world.container.db.autocommit() as conn:
        audit = (await conn.execute(text(
            "SELECT actor_id, source::text, action FROM remediation_actions "
            "WHERE dead_letter_id = :id"), {"id": entry})).all()
    assert [tuple(a) for a in audit] == [(world.staff, "console", "resolve")]
    await world.sandbox.wait_for_message(
        world.log_channel, lambda m: f"resolved #{entry}" in m.text and "fixed by hand" in m.text)


async def test_a_stale_retry_needs_replay_anyway(world: World) -> None:
    await setup_guild(world)
    user, entry = await replayable(world.container, world.guild.id)
    # Staff verify the member by hand meanwhile: the entry is stale now.
    await world.container.transitions.apply(cmd(Operation.VERIFY, user, world.guild.id,
                                                 source=Source.STAFF))
    url = f"/console/g/{world.guild.id}/dead-letters/{entry}/retry"
    async with console_client(world) as http:
        csrf = await _login(world, http, world.staff, "staffer")
        shown = await http.get(url.removesuffix("/retry"))
        assert "They changed since this was recorded" in shown.text
        assert "would now be: refused" in shown.text  # verify from verified
        assert "(after the failure)" in shown.text  # staff's verify, in the ledger
        stale = await http.post(url, data={"csrf": csrf}, headers=ORIGIN)
        assert stale.status_code == 409
        assert "The member changed since this was recorded" in stale.text
        assert "Replay anyway" in stale.text
        forced = await http.post(url, data={"csrf": csrf, "force": "1"}, headers=ORIGIN)
        assert forced.status_code == 200 and "Replayed, and it failed again" in forced.text
    async with world.container.db.autocommit() as conn:
        notes = list((await conn.execute(text(
            "SELECT note FROM remediation_actions WHERE dead_letter_id = :id"),
            {"id": entry})).scalars())
    assert len(notes) == 1 and (notes[0] or "").startswith("forced")


async def test_the_audit_page_and_its_csv_show_who_did_what(world: World) -> None:
    await setup_guild(world)
    entry = await dead_letter(world.container, world.guild.id)
    await world.container.remediation.dismiss(world.guild.id, entry, world.staff,
                                              "=HYPERLINK(\"http://evil\") dup", Source.STAFF)
    base = f"/console/g/{world.guild.id}"
    async with console_client(world) as http:
        await _login(world, http, world.staff, "staffer")
        page = await http.get(f"{base}/audit", params={"dead_letter_id": str(entry)})
        assert page.status_code == 200 and f"#{entry}" in page.text and "dismiss" in page.text
        assert (await http.get(f"{base}/audit", params={"actor_id": "x1"})).status_code == 400
        exported = await http.get(f"{base}/audit.csv")
        assert exported.headers["content-type"].startswith("text/csv")
        header, row, *rest = exported.text.strip().splitlines()
        assert header.startswith("id,created_at,target_kind") and rest == []
        assert f",dead_letter,{entry},{world.staff},staff,dismiss," in row
        assert "'=HYPERLINK" in row  # a spreadsheet does not run it


async def test_a_members_page_has_their_state_ledger_and_dead_letters(world: World) -> None:
    await setup_guild(world)
    user, entry = await replayable(world.container, world.guild.id)
    base = f"/console/g/{world.guild.id}/members"
    async with console_client(world) as http:
        await _login(world, http, world.staff, "staffer")
        page = await http.get(f"{base}/{user}")
        assert page.status_code == 200
        assert "verification_pending" in page.text and f"#{entry}" in page.text
        assert "request_verification" in page.text  # a ledger row
        assert (await http.get(f"{base}/999999")).status_code == 404


async def test_acting_on_a_selection_goes_one_by_one_and_says_how_each_ended(
        world: World) -> None:
    await setup_guild(world)
    fine = [await dead_letter(world.container, world.guild.id) for _ in range(2)]
    url = f"/console/g/{world.guild.id}/dead-letters/selected"
    async with console_client(world) as http:
        csrf = await _login(world, http, world.staff, "staffer")
        done = await http.post(url, data={"csrf": csrf, "action": "dismiss",
                                          "note": "known noise",
                                          "id": [str(fine[0]), str(fine[1]), "999999"]},
                               headers=ORIGIN)
        assert done.status_code == 200
        assert f"#{fine[0]}</a>: dismissed" in done.text
        assert "#999999</a>: not done" in done.text
        for bad in ({"action": "delete", "id": [str(fine[0])]}, {"action": "retry"},
                    {"action": "retry", "id": ["x"]}):
            refused = await http.post(url, data={"csrf": csrf, **bad}, headers=ORIGIN)
            assert refused.status_code == 400, bad
    async with world.container.db.autocommit() as conn:
        rows = (await conn.execute(text(
            "SELECT count(*) FROM remediation_actions WHERE source = 'console' "
            "AND action = 'dismiss'"))).scalar_one()
    assert rows == 2
