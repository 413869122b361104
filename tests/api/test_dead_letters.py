"""Dead-letter routes over the same RemediationService as /dlq: every answer, and audit rows."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text

from bot.container import Container
from domain.lifecycle import Operation, State
from domain.persistence.faults import Point
from tests.api.support import dead_letter
from tests.helpers import GUILD, OTHER_GUILD, STAFF, check_invariants, cmd, count, drive, next_user
from tests.wiring import ProcessServices

BASE = f"/api/v1/guilds/{GUILD}/dead-letters"
ACTOR = {"actor_id": str(STAFF)}


async def _pending_with_dead_letter(services: ProcessServices, container: Container,
                                    guild: int = GUILD) -> tuple[int, int]:
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING, guild)
    return user, await dead_letter(services, user, guild=guild)


async def test_list_pages_newest_first_with_filters_and_total(
        client: httpx.AsyncClient, services: ProcessServices, container: Container) -> None:
    made = [await _pending_with_dead_letter(services, container) for _ in range(5)]
    ids = [entry for _, entry in made]
    page1 = (await client.get(BASE, params={"status": "open", "limit": 2})).json()
    assert [e["id"] for e in page1["items"]] == ids[::-1][:2]
    assert page1["total"] == 5 and page1["total_exact"] is True
    assert page1["next_cursor"] == str(ids[3])
    page2 = (await client.get(BASE, params={"limit": 2, "cursor": page1["next_cursor"]})).json()
    page3 = (await client.get(BASE, params={"limit": 2, "cursor": page2["next_cursor"]})).json()
    assert [e["id"] for e in page2["items"] + page3["items"]] == ids[::-1][2:]
    assert page3["next_cursor"] is None
    signature = "verify/retries_exhausted/WriteConflict"
    assert (await client.get(BASE, params={"signature": signature})).json()["total"] == 5
    user = made[2][0]
    by_user = (await client.get(BASE, params={"user_id": str(user)})).json()
    assert [e["id"] for e in by_user["items"]] == [made[2][1]]
    assert by_user["items"][0]["user_id"] == str(user)
    for params in ({"operation": "verify"}, {"source": "bot"}):
        assert (await client.get(BASE, params=params)).json()["total"] == 5
    for params in ({"operation": "ban"}, {"source": "api"}, {"status": "dismissed"}):
        assert (await client.get(BASE, params=params)).json()["total"] == 0
    other = (await client.get(f"/api/v1/guilds/{OTHER_GUILD}/dead-letters")).json()
    assert other == {"items": [], "next_cursor": None, "total": 0, "total_exact": True}


async def test_list_counts_up_to_count_limit(
        client: httpx.AsyncClient, services: ProcessServices, container: Container) -> None:
    for _ in range(4):
        await _pending_with_dead_letter(services, container)
    # Filtered by source, the matching entries are counted, up to count_limit.
    by_source = {"source": "bot"}
    capped = (await client.get(BASE, params={**by_source, "count_limit": 3, "limit": 1})
              ).json()
    assert capped["total"] == 3 and capped["total_exact"] is False  # "more than 3"
    assert len(capped["items"]) == 1 and capped["next_cursor"]
    exact = (await client.get(BASE, params={**by_source, "count_limit": 4})).json()
    assert exact["total"] == 4 and exact["total_exact"] is True
    # Filtered by status (or nothing), the total comes from the counters: exact always.
    for params in ({}, {"status": "open"}):
        page = (await client.get(BASE, params={**params, "count_limit": 3})).json()
        assert page["total"] == 4 and page["total_exact"] is True


@pytest.mark.parametrize("params", [
    {"status": "lost"}, {"operation": "fly"}, {"source": "web"}, {"limit": 0},
    {"limit": 101}, {"limit": "ten"}, {"cursor": "abc"}, {"cursor": "9" * 19},
    {"cursor": "²"}, {"cursor": "1" * 20}, {"user_id": "0"}, {"user_id": str(2**63)},
    {"signature": ""}, {"signature": "s" * 301}, {"signature": "a\x00b"},
    {"count_limit": 0}, {"count_limit": "all"}, {"count_limit": 10_000_001},
])
async def test_bad_list_filters_are_422(client: httpx.AsyncClient,
                                        params: dict[str, str]) -> None:
    response = await client.get(BASE, params=params)
    assert response.status_code == 422, (params, response.text)
    assert response.json()["error"] == "invalid_input"


async def test_show_has_every_field_and_history_oldest_first(
        client: httpx.AsyncClient, services: ProcessServices, container: Container) -> None:
    user, entry_id = await _pending_with_dead_letter(services, container)
    await container.remediation.dismiss(GUILD, entry_id, STAFF, "first look")
    await container.remediation.reopen(GUILD, entry_id, STAFF)
    response = await client.get(f"{BASE}/{entry_id}")
    assert response.status_code == 200
    body = response.json()
    expected_fields = {
        "id", "guild_id", "user_id", "operation", "from_state", "to_state", "observed_state",
        "observed_version", "reason_code", "error_type", "error_message", "attempts",
        "source", "actor_id", "idempotency_key", "correlation_id", "payload", "signature",
        "status", "remediation_count", "last_remediated_at", "resolved_by",
        "resolution_note", "created_at", "updated_at", "version", "stack_trace", "history"}
    assert set(body) == expected_fields
    # The original failure's traceback, as recorded: its frames and the error.
    assert body["stack_trace"].startswith("Traceback (most recent call last)")
    assert "WriteConflict" in body["stack_trace"] and "domain/" in body["stack_trace"]
    assert body["user_id"] == str(user) and body["status"] == "open"
    assert body["reason_code"] == "retries_exhausted" and body["attempts"] == 5
    assert body["payload"]["operation"] == "verify"
    assert [h["action"] for h in body["history"]] == ["dismiss", "reopen"]
    assert body["history"][0]["note"] == "first look"
    assert body["history"][0]["actor_id"] == str(STAFF)


async def test_unknown_ids_and_ids_of_another_guild_are_404_and_write_nothing(
        client: httpx.AsyncClient, services: ProcessServices, container: Container) -> None:
    _, foreign = await _pending_with_dead_letter(services, container, guild=OTHER_GUILD)
    before = await count(services.db, "dead_letters", "id = :id AND version = 1", id=foreign)
    for entry_id in (foreign, 999_999):
        assert (await client.get(f"{BASE}/{entry_id}")).status_code == 404
        for action, body in (("retry", ACTOR), ("resolve", {**ACTOR, "note": "n"}),
                             ("dismiss", {**ACTOR, "note": "n"}), ("reopen", ACTOR)):
            response = await client.post(f"{BASE}/{entry_id}/{action}", json=body)
            assert response.status_code == 404, (action, response.text)
            assert response.json()["error"] == "not_found"
    assert before == 1
    assert await count(services.db, "dead_letters", "id = :id AND version = 1 "
                       "AND status = 'open'", id=foreign) == 1
    assert await count(services.db, "remediation_actions") == 0
    assert await count(services.db, "outbox", "payload->>'record' = 'remediation'") == 0


async def test_retry_resolves_and_a_second_retry_is_409(
        client: httpx.AsyncClient, services: ProcessServices, container: Container) -> None:
    user, entry_id = await _pending_with_dead_letter(services, container)
    response = await client.post(f"{BASE}/{entry_id}/retry", json=ACTOR)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resolved"] is True and body["already_applied"] is False
    assert body["entry"]["status"] == "resolved"
    member = (await client.get(f"/api/v1/guilds/{GUILD}/members/{user}")).json()
    assert member["state"] == "verified"
    again = await client.post(f"{BASE}/{entry_id}/retry", json=ACTOR)
    assert again.status_code == 409 and again.json()["error"] == "invalid_status"
    audit = (await client.get(f"{BASE}/{entry_id}")).json()["history"]
    assert [(h["action"], h["outcome"], h["source"]) for h in audit] == [
        ("retry", "resolved", "api")]
    await check_invariants(services.db)


async def test_a_stale_entry_is_409_with_what_changed_unless_forced(
        client: httpx.AsyncClient, services: ProcessServices, container: Container) -> None:
    """The member left after the entry was recorded: the retry answers 409 stale_entry
    with the recorded and current state and version and the transitions since, and writes
    nothing; with "force": true it is replayed (and fails here: the member left), with 200
    and the entry open again."""
    user = next_user()
    await drive(services, user, State.JOINED)
    entry_id = await dead_letter(services, user, Operation.START_ONBOARDING)
    await services.transitions.apply(cmd(Operation.LEAVE, user))
    stale = await client.post(f"{BASE}/{entry_id}/retry", json=ACTOR)
    assert stale.status_code == 409, stale.text
    body = stale.json()
    assert body["error"] == "stale_entry"
    assert (body["recorded_state"], body["recorded_version"]) == ("joined", 1)
    assert (body["current_state"], body["current_version"]) == ("left_guild", 2)
    assert body["transitions_since"] == 1
    assert [t["operation"] for t in body["recent_transitions"]] == ["leave"]
    assert isinstance(body["recent_transitions"][0]["actor_id"], str | None)
    assert (await client.get(f"{BASE}/{entry_id}")).json()["history"] == []
    group = await client.post(f"{BASE}/retry-group", json={
        **ACTOR, "signature": "start_onboarding/retries_exhausted/WriteConflict"})
    assert group.json()["stale"] == 1 and group.json()["failed"] == 0
    response = await client.post(f"{BASE}/{entry_id}/retry", json={**ACTOR, "force": True})
    assert response.status_code == 200
    body = response.json()
    assert body["resolved"] is False and body["entry"]["status"] == "open"
    assert "left_guild" in body["detail"]


async def test_a_requests_correlation_id_is_on_the_audit_rows_it_causes(
        client: httpx.AsyncClient, services: ProcessServices) -> None:
    """X-Correlation-ID ties one request's remediation together: its audit rows carry it
    (and the replayed transition's ledger row)."""
    users = [next_user() for _ in range(2)]
    entries = []
    for user in users:
        await drive(services, user, State.VERIFICATION_PENDING)
        entries.append(await dead_letter(services, user))
    retried = await client.post(f"{BASE}/{entries[0]}/retry", json=ACTOR,
                                headers={"X-Correlation-ID": "ticket-4711.retry"})
    assert retried.status_code == 200 and retried.headers["x-correlation-id"] == \
        "ticket-4711.retry"
    dismissed = await client.post(f"{BASE}/{entries[1]}/dismiss",
                                  json={**ACTOR, "note": "dup"},
                                  headers={"X-Correlation-ID": "ticket-4711.dismiss"})
    assert dismissed.status_code == 200, dismissed.text
    async with services.db.autocommit() as conn:
        audit = dict((await conn.execute(text(
            "SELECT dead_letter_id, correlation_id FROM remediation_actions"))).all())
        ledger = (await conn.execute(text(
            "SELECT correlation_id FROM member_transitions WHERE user_id = :u "
            "AND operation = 'verify'"), {"u": users[0]})).scalar_one()
    assert audit == {entries[0]: "ticket-4711.retry", entries[1]: "ticket-4711.dismiss"}
    assert ledger == "ticket-4711.retry"


async def test_discord_ids_are_strings_inside_the_payload_too(
        client: httpx.AsyncClient, services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.JOINED)
    entry_id = await dead_letter(services, user, Operation.START_ONBOARDING)
    entry = (await client.get(f"{BASE}/{entry_id}")).json()
    assert entry["user_id"] == str(user) and entry["guild_id"] == str(GUILD)
    assert entry["payload"]["user_id"] == str(user)
    assert entry["payload"]["guild_id"] == str(GUILD)
    assert entry["id"] == entry_id  # not a Discord id: a number
    listed = (await client.get(BASE)).json()["items"][0]
    assert listed["payload"]["user_id"] == str(user)


async def test_an_entry_whose_command_cannot_be_read_goes_back_to_open_with_409(
        client: httpx.AsyncClient, services: ProcessServices, container: Container) -> None:
    """A stored command a later release cannot read (its operation renamed): the retry
    answers 409 payload_invalid (never 500), the entry is open again (not stuck in
    `retrying`) with error type PayloadInvalid and its signature unchanged, and the attempt
    is audited."""
    user = next_user()
    await drive(services, user, State.JOINED)
    entry_id = await dead_letter(services, user, Operation.START_ONBOARDING)
    async with services.db.transaction() as conn:
        signature = (await conn.execute(text(
            "UPDATE dead_letters SET payload = jsonb_set(payload, '{operation}', "
            "'\"begin_onboarding\"') WHERE id = :id RETURNING signature"),
            {"id": entry_id})).scalar_one()
    response = await client.post(f"{BASE}/{entry_id}/retry", json=ACTOR)
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "payload_invalid"
    assert "begin_onboarding" in response.json()["detail"]
    entry = (await client.get(f"{BASE}/{entry_id}")).json()
    assert entry["status"] == "open" and entry["error_type"] == "PayloadInvalid"
    assert entry["signature"] == signature
    assert [(h["action"], h["outcome"]) for h in entry["history"]] == [("retry", "failed")]


async def test_retry_while_another_retry_runs_is_409(
        client: httpx.AsyncClient, services: ProcessServices, container: Container) -> None:
    _, entry_id = await _pending_with_dead_letter(services, container)
    async with services.db.transaction() as conn:
        await conn.execute(text("UPDATE dead_letters SET status = 'retrying' WHERE id = :id"),
                           {"id": entry_id})
    response = await client.post(f"{BASE}/{entry_id}/retry", json=ACTOR)
    assert response.status_code == 409 and response.json()["error"] == "already_retrying"
    resolve = await client.post(f"{BASE}/{entry_id}/resolve", json={**ACTOR, "note": "n"})
    assert resolve.status_code == 409 and resolve.json()["error"] == "already_retrying"


async def test_resolve_dismiss_reopen_cycle_and_refusals(
        client: httpx.AsyncClient, services: ProcessServices, container: Container) -> None:
    _, entry_id = await _pending_with_dead_letter(services, container)
    url = f"{BASE}/{entry_id}"
    no_note = await client.post(f"{url}/resolve", json=ACTOR)
    assert no_note.status_code == 422
    blank = await client.post(f"{url}/resolve", json={**ACTOR, "note": "   "})
    assert blank.status_code == 422 and blank.json()["error"] == "invalid_input"
    reopen_open = await client.post(f"{url}/reopen", json=ACTOR)
    assert reopen_open.status_code == 409 and reopen_open.json()["error"] == "invalid_status"

    dismissed = await client.post(f"{url}/dismiss", json={**ACTOR, "note": "known noise"})
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
    assert dismissed.json()["resolved_by"] == str(STAFF)
    assert dismissed.json()["resolution_note"] == "known noise"
    for action, body in (("retry", ACTOR), ("resolve", {**ACTOR, "note": "n"}),
                         ("dismiss", {**ACTOR, "note": "n"})):
        response = await client.post(f"{url}/{action}", json=body)
        assert response.status_code == 409 and response.json()["error"] == "dismissed"

    reopened = await client.post(f"{url}/reopen", json={**ACTOR, "note": "look again"})
    assert reopened.status_code == 200 and reopened.json()["status"] == "open"
    resolved = await client.post(f"{url}/resolve", json={**ACTOR, "note": "fixed by hand"})
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    twice = await client.post(f"{url}/resolve", json={**ACTOR, "note": "again"})
    assert twice.status_code == 409 and twice.json()["error"] == "invalid_status"
    history = (await client.get(url)).json()["history"]
    assert [h["action"] for h in history] == ["dismiss", "reopen", "resolve"]
    assert {h["source"] for h in history} == {"api"}


@pytest.mark.parametrize("body", [
    {}, {"note": "n"}, {"actor_id": 0, "note": "n"}, {"actor_id": "x", "note": "n"},
    {"actor_id": STAFF, "note": ""}, {"actor_id": STAFF, "note": "n" * 1001},
    {"actor_id": STAFF, "note": 5}, {"actor_id": STAFF, "note": "n", "extra": 1},
])
async def test_bad_action_bodies_are_422(client: httpx.AsyncClient, body: dict[str, object]
                                         ) -> None:
    response = await client.post(f"{BASE}/1/dismiss", json=body)
    assert response.status_code == 422, (body, response.text)
    assert response.json()["error"] == "invalid_input"


async def test_retry_group_counts_and_bad_input(
        client: httpx.AsyncClient, services: ProcessServices, container: Container) -> None:
    made = [await _pending_with_dead_letter(services, container) for _ in range(3)]
    await container.remediation.dismiss(GUILD, made[0][1], STAFF, "skip this one")
    signature = "verify/retries_exhausted/WriteConflict"
    response = await client.post(f"{BASE}/retry-group",
                                 json={"signature": signature, **ACTOR})
    assert response.status_code == 200, response.text
    assert response.json() == {"signature": signature, "total": 2, "resolved": 2,
                               "failed": 0, "skipped": 0, "stale": 0}
    nothing = await client.post(f"{BASE}/retry-group", json={"signature": "none/x/y", **ACTOR})
    assert nothing.json()["total"] == 0
    for body in ({"signature": "", **ACTOR}, {"signature": "s" * 301, **ACTOR},
                 {"signature": signature}):
        assert (await client.post(f"{BASE}/retry-group", json=body)).status_code == 422


async def test_stats_by_status_and_signature(
        client: httpx.AsyncClient, services: ProcessServices, container: Container) -> None:
    made = [await _pending_with_dead_letter(services, container) for _ in range(3)]
    await container.remediation.dismiss(GUILD, made[0][1], STAFF, "noise")
    response = await client.get(f"{BASE}/stats")
    assert response.status_code == 200
    body = response.json()
    assert body["by_status"] == {"open": 2, "retrying": 0, "resolved": 0, "dismissed": 1}
    assert body["by_signature"] == [{"signature": "verify/retries_exhausted/WriteConflict",
                                     "operation": "verify", "reason_code": "retries_exhausted",
                                     "open": 2, "total": 3}]
    assert body["oldest_open_age_seconds"] >= 0 and body["retention_days"] == 30
    assert body["total"] == 3  # every entry, whatever its status
    empty = (await client.get(f"/api/v1/guilds/{OTHER_GUILD}/dead-letters/stats")).json()
    assert empty["oldest_open_age_seconds"] is None and empty["by_signature"] == []
    assert empty["total"] == 0


async def test_entry_ids_out_of_range_are_422(client: httpx.AsyncClient) -> None:
    for entry_id in ("0", "-3", str(2**63), "1" * 40, "x", "1.5", "%E2%80%8B1"):
        shown = await client.get(f"{BASE}/{entry_id}")
        assert shown.status_code == 422, (entry_id, shown.text)
        response = await client.post(f"{BASE}/{entry_id}/retry", json=ACTOR)
        assert response.status_code == 422 and response.json()["error"] == "invalid_input"


async def test_a_resolve_whose_write_changes_nothing_says_changed_meanwhile(
        client: httpx.AsyncClient, services: ProcessServices, container: Container) -> None:
    _, entry_id = await _pending_with_dead_letter(services, container)
    services.faults.lose_cas(Point.DEAD_LETTERS_OUTCOME)
    response = await client.post(f"{BASE}/{entry_id}/resolve",
                                 json={**ACTOR, "note": "fixed by hand"})
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "already_retrying"
    assert "changed by someone else meanwhile" in response.json()["detail"]
    assert await count(services.db, "remediation_actions") == 0
    services.faults.clear()
    entry = (await client.get(f"{BASE}/{entry_id}")).json()
    assert entry["status"] == "open"
