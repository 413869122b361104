"""Member routes: read, ledger, and transitions with every documented answer."""

from __future__ import annotations

import httpx

from bot.container import Container
from domain.lifecycle import State
from domain.persistence.faults import Point
from tests.api.support import lose_every_write
from tests.helpers import GUILD, OTHER_GUILD, STAFF, check_invariants, count, drive, next_user
from tests.wiring import ProcessServices

BASE = f"/api/v1/guilds/{GUILD}/members"


async def test_get_member_answers_state_and_version_with_ids_as_strings(
        client: httpx.AsyncClient, services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.RULES_ACCEPTED)
    response = await client.get(f"{BASE}/{user}")
    assert response.status_code == 200
    body = response.json()
    assert body["guild_id"] == str(GUILD) and body["user_id"] == str(user)
    assert body["state"] == "rules_accepted" and body["version"] == 4
    assert body["updated_at"].endswith(("Z", "+00:00"))
    assert response.headers["x-correlation-id"]


async def test_unknown_member_and_member_of_another_guild_are_404(
        client: httpx.AsyncClient, services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.JOINED, guild=OTHER_GUILD)
    for path in (f"{BASE}/{user}", f"{BASE}/{user}/transitions"):
        response = await client.get(path)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
        assert str(user) in response.json()["detail"]


async def test_ledger_is_newest_first_and_limited(client: httpx.AsyncClient,
                                                  services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    response = await client.get(f"{BASE}/{user}/transitions", params={"limit": 3})
    assert response.status_code == 200
    items = response.json()["items"]
    assert [i["version"] for i in items] == [5, 4, 3]
    assert items[0]["operation"] == "request_verification"
    assert items[0]["from_state"] == "rules_accepted"
    assert items[0]["to_state"] == "verification_pending"
    assert (await client.get(f"{BASE}/{user}/transitions", params={"limit": 0})
            ).status_code == 422
    assert (await client.get(f"{BASE}/{user}/transitions", params={"limit": 101})
            ).status_code == 422


async def test_transition_applies_once_per_idempotency_key(
        client: httpx.AsyncClient, services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    body = {"operation": "verify", "idempotency_key": "web-verify-1", "actor_id": str(STAFF),
            "reason": "checked by the web app ✓"}
    first = await client.post(f"{BASE}/{user}/transitions", json=body)
    assert first.status_code == 200, first.text
    again = await client.post(f"{BASE}/{user}/transitions", json={**body, "actor_id": STAFF})
    assert again.status_code == 200
    one, two = first.json(), again.json()
    assert one["applied"] is True and two["applied"] is False
    assert one["transition_id"] == two["transition_id"]
    assert one["member"] == two["member"]
    assert one["member"]["state"] == "verified" and one["member"]["version"] == 6
    assert one["from_state"] == "verification_pending" and one["operation"] == "verify"
    ledger = (await client.get(f"{BASE}/{user}/transitions", params={"limit": 1})).json()
    newest = ledger["items"][0]
    assert newest["source"] == "api" and newest["actor_id"] == str(STAFF)
    assert newest["idempotency_key"] == "web-verify-1"
    assert newest["correlation_id"] == first.headers["x-correlation-id"]
    await check_invariants(services.db)


async def test_caller_correlation_id_is_carried_into_the_ledger(
        client: httpx.AsyncClient, services: ProcessServices) -> None:
    user = next_user()
    response = await client.post(f"{BASE}/{user}/transitions",
                                 json={"operation": "join", "idempotency_key": "j"},
                                 headers={"X-Correlation-ID": "web-req-42"})
    assert response.status_code == 200
    assert response.headers["x-correlation-id"] == "web-req-42"
    ledger = (await client.get(f"{BASE}/{user}/transitions")).json()["items"]
    assert ledger[0]["correlation_id"] == "web-req-42"


async def test_reusing_a_key_for_another_operation_is_409(client: httpx.AsyncClient,
                                                          services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    ok = await client.post(f"{BASE}/{user}/transitions",
                           json={"operation": "verify", "idempotency_key": "k1"})
    assert ok.status_code == 200
    reused = await client.post(f"{BASE}/{user}/transitions",
                               json={"operation": "reverify", "idempotency_key": "k1"})
    assert reused.status_code == 409
    assert reused.json()["error"] == "idempotency_key_reused"
    assert "k1" in reused.json()["detail"]


async def test_strict_mode_mismatch_is_409_with_current_state_and_nothing_written(
        client: httpx.AsyncClient, services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    response = await client.post(f"{BASE}/{user}/transitions", json={
        "operation": "verify", "idempotency_key": "strict-1",
        "expected_state": "verification_pending", "expected_version": 4})
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "version_conflict"
    assert body["current_state"] == "verification_pending" and body["current_version"] == 5
    assert body["expected_state"] == "verification_pending" and body["expected_version"] == 4
    assert await count(services.db, "member_transitions", "user_id = :u", u=user) == 5
    assert await count(services.db, "dead_letters") == 0
    matching = await client.post(f"{BASE}/{user}/transitions", json={
        "operation": "verify", "idempotency_key": "strict-2",
        "expected_state": "verification_pending", "expected_version": 5})
    assert matching.status_code == 200 and matching.json()["member"]["version"] == 6


async def test_strict_mode_on_an_unknown_member_reports_no_record(
        client: httpx.AsyncClient) -> None:
    response = await client.post(f"{BASE}/{next_user()}/transitions", json={
        "operation": "join", "idempotency_key": "j", "expected_version": 3})
    assert response.status_code == 409
    assert response.json()["current_state"] is None
    assert response.json()["current_version"] == 0


async def test_operation_not_allowed_is_422_naming_operation_and_state(
        client: httpx.AsyncClient, services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.JOINED)
    response = await client.post(f"{BASE}/{user}/transitions",
                                 json={"operation": "verify", "idempotency_key": "v"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "transition_not_allowed"
    assert body["operation"] == "verify" and body["current_state"] == "joined"
    assert "verify" in body["detail"] and "joined" in body["detail"]
    assert await count(services.db, "dead_letters") == 0


async def test_retries_exhausted_is_503_naming_the_dead_letter(
        client: httpx.AsyncClient, container: Container, services: ProcessServices) -> None:
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    lose_every_write(services)
    response = await client.post(f"{BASE}/{user}/transitions",
                                 json={"operation": "verify", "idempotency_key": "lost?"})
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "dead_lettered" and body["reason_code"] == "retries_exhausted"
    assert f"#{body['dead_letter_id']}" in body["detail"]
    assert await count(services.db, "dead_letters", "id = :id AND idempotency_key = 'lost?' "
                       "AND source = 'api'", id=body["dead_letter_id"]) == 1


async def test_bad_transition_bodies_are_422_with_the_field_named(
        client: httpx.AsyncClient, services: ProcessServices) -> None:
    user = next_user()
    url = f"{BASE}/{user}/transitions"
    cases = [
        ({"idempotency_key": "k"}, "body.operation"),
        ({"operation": "fly", "idempotency_key": "k"}, "body.operation"),
        ({"operation": "join"}, "body.idempotency_key"),
        ({"operation": "join", "idempotency_key": ""}, "body.idempotency_key"),
        ({"operation": "join", "idempotency_key": "k" * 201}, "body.idempotency_key"),
        ({"operation": "join", "idempotency_key": "a\u0000b"}, "body.idempotency_key"),
        ({"operation": "join", "idempotency_key": "k", "reason": "r" * 1001}, "body.reason"),
        ({"operation": "join", "idempotency_key": "k", "actor_id": 0}, "body.actor_id"),
        ({"operation": "join", "idempotency_key": "k", "actor_id": 2**63}, "body.actor_id"),
        ({"operation": "join", "idempotency_key": "k", "actor_id": "12x"}, "body.actor_id"),
        ({"operation": "join", "idempotency_key": "k", "actor_id": True}, "body.actor_id"),
        ({"operation": "join", "idempotency_key": "k", "expected_version": -1},
         "body.expected_version"),
        ({"operation": "join", "idempotency_key": "k", "expected_version": 10**40},
         "body.expected_version"),
        ({"operation": "join", "idempotency_key": "k", "expected_state": "nirvana"},
         "body.expected_state"),
        ({"operation": "join", "idempotency_key": "k", "expected_versoin": 1},
         "body.expected_versoin"),
        ({"operation": ["join"], "idempotency_key": {"a": 1}}, "body.operation"),
        ([], "body"),
        ("join", "body"),
    ]
    for payload, loc in cases:
        response = await client.post(url, json=payload)
        assert response.status_code == 422, (payload, response.text)
        body = response.json()
        assert body["error"] == "invalid_input", payload
        assert any(e["loc"].startswith(loc) for e in body["errors"]), (payload, body)
    assert await count(services.db, "member_transitions", "user_id = :u", u=user) == 0


async def test_lone_surrogates_and_malformed_json_are_422(client: httpx.AsyncClient) -> None:
    url = f"{BASE}/{next_user()}/transitions"
    raw_bodies = [
        b'{"operation": "join", "idempotency_key": "\\ud800"}',
        b'{"operation": "join", "idempotency_key": ',
        b"not json at all",
        b"\xff\xfe\x00",
        b"[" * 50_000,
        b'{"operation": "join", "idempotency_key": "k", "expected_version": 1'
        + b"0" * 5000 + b"}",
    ]
    for raw in raw_bodies:
        response = await client.post(url, content=raw,
                                     headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (raw[:60], response.text)
        assert response.json()["error"] == "invalid_input"
    no_type = await client.post(url, content=b'{"operation": "join", "idempotency_key": "k"}')
    assert no_type.status_code == 422  # JSON is read only when declared as JSON


async def test_path_ids_out_of_range_are_422_not_500(client: httpx.AsyncClient) -> None:
    good = 10**17
    for guild, user in [(0, good), (-1, good), (2**63, good), (good, 2**63),
                        (good, 10**30), ("abc", good), (good, "1.5"), (good, "%F0%9F%98%80"),
                        (good, "1e3")]:
        for method, suffix in (("GET", ""), ("GET", "/transitions"), ("POST", "/transitions")):
            response = await client.request(
                method, f"/api/v1/guilds/{guild}/members/{user}{suffix}",
                json={"operation": "join", "idempotency_key": "k"} if method == "POST" else None)
            assert response.status_code == 422, (guild, user, suffix, response.text)
            assert response.json()["error"] == "invalid_input"
    top = await client.get(f"/api/v1/guilds/{2**63 - 1}/members/{2**63 - 1}")
    assert top.status_code == 404


async def test_a_connection_dropped_while_recording_the_dead_letter_is_503(
        client: httpx.AsyncClient, services: ProcessServices) -> None:
    """Every compare-and-set loses, then the connection that writes the dead letter drops:
    nothing could be kept, and the web app is told to try again (not a 500)."""
    user = next_user()
    await drive(services, user, State.VERIFICATION_PENDING)
    lose_every_write(services)
    services.faults.drop_connection(Point.DEAD_LETTERS_INSERT)
    response = await client.post(f"{BASE}/{user}/transitions",
                                 json={"operation": "verify", "idempotency_key": "k-drop"})
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "database_unavailable"
    assert services.faults.hits[Point.DEAD_LETTERS_INSERT] == 1
    assert await count(services.db, "dead_letters") == 0
    member = await services.transitions.get_member(GUILD, user)
    assert member is not None and member.state == State.VERIFICATION_PENDING
