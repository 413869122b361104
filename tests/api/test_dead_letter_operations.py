"""The dead-letter operations beyond one entry's remediation, over HTTP: delete, retry-all by
filter, unresolved-by-default and oldest-first lists, and the audit read."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from bot.container import Container
from domain.lifecycle import Operation, State
from domain.persistence.faults import Point
from tests.api.support import dead_letter
from tests.helpers import (
    GUILD,
    OTHER_GUILD,
    STAFF,
    cmd,
    count,
    drive,
    next_user,
    setup_log_channel,
)
from tests.wiring import ProcessServices

BASE = f"/api/v1/guilds/{GUILD}/dead-letters"
AUDIT = f"/api/v1/guilds/{GUILD}/audit"
ACTOR = {"actor_id": str(STAFF)}
SIGNATURE = "verify/retries_exhausted/WriteConflict"


async def _entry(services: ProcessServices, guild: int = GUILD,
                 op: Operation = Operation.VERIFY) -> tuple[int, int]:
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING, guild)
    return user, await dead_letter(services, user, op, guild=guild)


async def _claim(container: Container, entry_id: int) -> None:
    """The entry is being retried by someone else (its claim is fresh)."""
    assert await container.remediation.store.claim(GUILD, entry_id, 300) is not None


async def test_delete_needs_a_note_keeps_the_audit_and_the_counts_right(
        client: httpx.AsyncClient, services: ProcessServices, container: Container) -> None:
    await setup_log_channel(services.db)
    (_, first), (_, second), (_, kept) = [await _entry(services) for _ in range(3)]
    await container.remediation.dismiss(GUILD, first, STAFF, "noise")
    for body in ({**ACTOR}, {**ACTOR, "note": ""}, {**ACTOR, "note": " \u200b "},
                 {"note": "why"}):
        refused = await client.request("DELETE", f"{BASE}/{first}", json=body)
        assert refused.status_code == 422, (body, refused.text)
    assert await count(services.db, "dead_letters") == 3

    deleted = await client.request("DELETE", f"{BASE}/{first}",
                                   json={**ACTOR, "note": "duplicate of #2"})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deleted"]["id"] == first
    assert deleted.json()["deleted"]["status"] == "dismissed"
    by_post = await client.post(f"{BASE}/{second}/delete", json={**ACTOR, "note": "gone"})
    assert by_post.status_code == 200 and by_post.json()["deleted"]["status"] == "open"
    assert (await client.get(f"{BASE}/{first}")).status_code == 404
    again = await client.post(f"{BASE}/{first}/delete", json={**ACTOR, "note": "again"})
    assert again.status_code == 404

    # The counters follow (a trigger): what is left is what stats and the list say.
    stats = (await client.get(f"{BASE}/stats")).json()
    assert stats["total"] == 1 and stats["by_status"]["open"] == 1
    assert stats["by_status"]["dismissed"] == 0
    listed = (await client.get(BASE, params={"status": "all"})).json()
    assert [e["id"] for e in listed["items"]] == [kept] and listed["total"] == 1

    # The audit rows outlive the entry: the dismissal and the deletion, newest first.
    trail = (await client.get(AUDIT, params={"dead_letter_id": str(first)})).json()["items"]
    assert [(r["action"], r["status_before"], r["status_after"]) for r in trail] == [
        ("delete", "dismissed", "deleted"), ("dismiss", "open", "dismissed")]
    assert trail[0]["note"] == "duplicate of #2" and trail[0]["actor_id"] == str(STAFF)
    assert trail[0]["source"] == "api"
    # ... and the log channel hears of both deletions.
    assert await count(services.db, "outbox",
                       "payload->>'record' = 'remediation' "
                       "AND payload->>'action' = 'delete'") == 2


async def test_an_entry_being_retried_cannot_be_deleted(
        client: httpx.AsyncClient, services: ProcessServices, container: Container) -> None:
    _, entry = await _entry(services)
    _, foreign = await _entry(services, guild=OTHER_GUILD)
    await _claim(container, entry)
    refused = await client.request("DELETE", f"{BASE}/{entry}",
                                   json={**ACTOR, "note": "cleanup"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == "already_retrying"
    assert "being retried" in refused.json()["detail"]
    other = await client.post(f"{BASE}/{foreign}/delete", json={**ACTOR, "note": "x"})
    assert other.status_code == 404
    assert await count(services.db, "dead_letters") == 2
    assert await count(services.db, "remediation_actions") == 0


async def test_retry_all_previews_then_replays_what_matches(
        client: httpx.AsyncClient, services: ProcessServices, container: Container) -> None:
    good = [await _entry(services) for _ in range(3)]
    (failing_user, failing) = await _entry(services)
    (stale_user, stale) = await _entry(services)
    (_, busy) = await _entry(services)
    (_, other_op) = await _entry(services, op=Operation.REJECT)
    (_, dismissed) = await _entry(services)
    await container.remediation.dismiss(GUILD, dismissed, STAFF, "not this one")
    await _entry(services, guild=OTHER_GUILD)
    # Staff verified this member by hand since: its entry is stale.
    await services.transitions.apply(cmd(Operation.VERIFY, stale_user))
    await _claim(container, busy)
    body = {**ACTOR, "filters": {"operation": "verify"}}

    preview = await client.post(f"{BASE}/retry-all", json={**body, "dry_run": True})
    assert preview.status_code == 200, preview.text
    assert preview.json()["matched"] == 6 and preview.json()["dry_run"] is True
    assert preview.json()["resolved"] == 0
    assert await count(services.db, "remediation_actions", "action = 'retry'") == 0
    assert await count(services.db, "dead_letters", "status = 'open'") == 7

    # This member's replay loses every compare-and-set again: it fails.
    services.faults.lose_cas(when=lambda hit: hit.user_id == failing_user)
    done = await client.post(f"{BASE}/retry-all", json=body)
    assert done.status_code == 200, done.text
    assert done.json() == {"matched": 6, "resolved": 3, "failed": 1, "skipped": 1,
                           "stale": 1, "remaining": 0, "dry_run": False}
    for _, entry in good:
        assert (await client.get(f"{BASE}/{entry}")).json()["status"] == "resolved"
    states = {e: (await client.get(f"{BASE}/{e}")).json()["status"]
              for e in (failing, stale, busy, other_op, dismissed)}
    assert states == {failing: "open", stale: "open", busy: "retrying", other_op: "open",
                      dismissed: "dismissed"}
    services.faults.clear()

    forced = await client.post(f"{BASE}/retry-all", json={
        **ACTOR, "force": True, "filters": {"status": "open", "signature": SIGNATURE,
                                            "user_id": str(stale_user)}})
    assert forced.json()["matched"] == 1 and forced.json()["failed"] == 1  # already verified
    assert await count(services.db, "remediation_actions",
                       "dead_letter_id = :id AND note LIKE 'forced%'", id=stale) == 1


async def test_retry_all_refuses_bad_filters_and_closed_statuses(
        client: httpx.AsyncClient, services: ProcessServices) -> None:
    await _entry(services)
    for body in ({**ACTOR, "filters": {"status": "resolved"}},
                 {**ACTOR, "filters": {"status": "all"}},
                 {**ACTOR, "filters": {"operation": "fly"}},
                 {**ACTOR, "filters": {"stauts": "open"}},
                 {**ACTOR, "filters": {"user_id": "0"}},
                 {**ACTOR, "dry_run": "yes"},
                 {"filters": {}}):
        response = await client.post(f"{BASE}/retry-all", json=body)
        assert response.status_code == 422, (body, response.text)
    assert await count(services.db, "remediation_actions") == 0


async def test_list_is_unresolved_by_default_and_pages_oldest_first(
        client: httpx.AsyncClient, services: ProcessServices, container: Container) -> None:
    ids = [entry for _, entry in [await _entry(services) for _ in range(6)]]
    await container.remediation.resolve(GUILD, ids[1], STAFF, "fixed by hand")
    await container.remediation.dismiss(GUILD, ids[4], STAFF, "noise")
    await _claim(container, ids[2])
    unresolved = [i for i in ids if i not in (ids[1], ids[4])]
    default = (await client.get(BASE)).json()
    assert [e["id"] for e in default["items"]] == unresolved[::-1] and default["total"] == 4
    assert {e["status"] for e in default["items"]} == {"open", "retrying"}
    named = (await client.get(BASE, params={"status": "unresolved"})).json()
    assert named["items"] == default["items"]
    everything = (await client.get(BASE, params={"status": "all"})).json()
    assert [e["id"] for e in everything["items"]] == ids[::-1] and everything["total"] == 6

    for params, expected in (({"order": "oldest"}, unresolved),
                             ({"order": "newest"}, unresolved[::-1]),
                             ({"order": "oldest", "status": "all"}, ids)):
        seen: list[int] = []
        cursor = None
        while True:
            page = (await client.get(BASE, params={**params, "limit": 3,
                                                   **({"cursor": cursor} if cursor else {})})
                    ).json()
            seen += [e["id"] for e in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == expected, params
    assert (await client.get(BASE, params={"order": "up"})).status_code == 422


async def test_audit_pages_newest_first_with_filters_and_string_ids(
        client: httpx.AsyncClient, services: ProcessServices, container: Container) -> None:
    (_, entry), (_, other) = await _entry(services), await _entry(services)
    await container.remediation.dismiss(GUILD, entry, STAFF, "first look")
    await container.remediation.reopen(GUILD, entry, STAFF + 1)
    await container.remediation.dismiss(GUILD, other, STAFF, "noise")
    # A delivery's audit row, as the outbox's remediation writes them.
    async with services.db.transaction() as conn:
        await conn.execute(text(
            "INSERT INTO remediation_actions (guild_id, target_kind, target_id, actor_id, "
            "source, action, outcome, status_before, status_after, correlation_id) VALUES "
            "(:g, 'delivery', 77, :a, 'api', 'retry', 'queued', 'failed', 'pending', 'c1'), "
            "(:o, 'delivery', 77, :a, 'api', 'retry', 'queued', 'failed', 'pending', 'c2')"),
            {"g": GUILD, "o": OTHER_GUILD, "a": STAFF})

    everything = (await client.get(AUDIT)).json()
    assert [r["action"] for r in everything["items"]] == ["retry", "dismiss", "reopen",
                                                          "dismiss"]
    delivery = everything["items"][0]
    assert delivery["target_kind"] == "delivery" and delivery["target_id"] == "77"
    assert delivery["dead_letter_id"] is None and delivery["status_after"] == "pending"
    row = everything["items"][2]
    assert set(row) == {"id", "target_kind", "target_id", "dead_letter_id", "actor_id",
                        "source", "action", "outcome", "status_before", "status_after",
                        "note", "error_message", "correlation_id", "created_at"}
    assert row["dead_letter_id"] == row["target_id"] == str(entry)
    assert row["actor_id"] == str(STAFF + 1) and isinstance(row["id"], str)

    page1 = (await client.get(AUDIT, params={"limit": 3})).json()
    page2 = (await client.get(AUDIT, params={"limit": 3, "before": page1["next_cursor"]})
             ).json()
    assert page1["items"] + page2["items"] == everything["items"]
    assert page2["next_cursor"] is None

    for params, actions in (({"dead_letter_id": str(entry)}, ["reopen", "dismiss"]),
                            ({"actor_id": str(STAFF + 1)}, ["reopen"]),
                            ({"target_kind": "delivery"}, ["retry"]),
                            ({"delivery_id": "77"}, ["retry"]),
                            ({"delivery_id": "78"}, [])):
        got = (await client.get(AUDIT, params=params)).json()["items"]
        assert [r["action"] for r in got] == actions, params
    for params in ({"target_kind": "member"}, {"limit": 0}, {"limit": 101},
                   {"before": "x"}, {"dead_letter_id": "0"}, {"actor_id": "abc"},
                   {"delivery_id": "77", "target_kind": "dead_letter"}, {"kind": "x"}):
        response = await client.get(AUDIT, params=params)
        assert response.status_code == 422, (params, response.text)


async def test_a_delete_whose_write_changes_nothing_writes_no_audit(
        client: httpx.AsyncClient, services: ProcessServices) -> None:
    _, entry = await _entry(services)
    services.faults.lose_cas(Point.DEAD_LETTERS_OUTCOME)
    response = await client.post(f"{BASE}/{entry}/delete", json={**ACTOR, "note": "x"})
    assert response.status_code == 409 and "meanwhile" in response.json()["detail"]
    assert await count(services.db, "dead_letters") == 1
    assert await count(services.db, "remediation_actions") == 0
