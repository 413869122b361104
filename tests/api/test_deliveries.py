"""Delivery routes over the same DeliveryService as /dlq deliveries and the CLI: failed role
changes and log lines, their cause and attempts, and their retry; guild-scoped, ids as
strings, audited."""

from __future__ import annotations

import httpx

from domain.lifecycle import Operation
from tests.delivery_support import ROLE, refused_grant
from tests.helpers import GUILD, OTHER_GUILD, STAFF, cmd, count
from tests.wiring import ProcessServices

BASE = f"/api/v1/guilds/{GUILD}/deliveries"
ACTOR = {"actor_id": str(STAFF)}


async def test_a_failed_grant_is_listed_shown_with_its_attempts_and_retried(
        client: httpx.AsyncClient, services: ProcessServices) -> None:
    user, delivery = await refused_grant(services)
    await refused_grant(services, OTHER_GUILD)  # never seen from GUILD
    page = (await client.get(BASE)).json()
    assert [d["id"] for d in page["items"]] == [delivery]
    item = page["items"][0]
    assert item["ref"] == f"D{delivery}" and item["status"] == "dead_lettered"
    assert (item["user_id"], item["role_id"], item["guild_id"]) == (str(user), str(ROLE),
                                                                    str(GUILD))
    assert item["cause"] == "role_below" and item["discord_code"] == 50013
    assert item["cause_text"].startswith("Lifeline's role is below the verified role")
    assert (await client.get(BASE, params={"kind": "mirror"})).json()["items"] == []
    shown = (await client.get(f"{BASE}/{delivery}")).json()
    [attempt] = shown["attempts_timeline"]
    assert (attempt["attempt"], attempt["outcome"], attempt["retryable"],
            attempt["http_status"], attempt["discord_code"]) == (1, "dead_lettered", False,
                                                                 403, 50013)
    # Another guild's delivery is not there.
    other = f"/api/v1/guilds/{OTHER_GUILD}/deliveries"
    assert (await client.get(f"{other}/{delivery}")).status_code == 404
    assert (await client.post(f"{other}/{delivery}/retry", json=ACTOR)).status_code == 404

    retried = await client.post(f"{BASE}/{delivery}/retry", json=ACTOR)
    assert retried.status_code == 200
    assert retried.json() | {"requeued_ids": None} == {
        "matched": 1, "requeued": 1, "stale": 0, "waiting": 0, "more": False,
        "requeued_ids": None, "stale_ids": []}
    assert (await client.get(f"{BASE}/{delivery}")).json()["status"] == "pending"
    # Not failed any more: a second retry is refused and changes nothing.
    again = await client.post(f"{BASE}/{delivery}/retry", json=ACTOR)
    assert again.status_code == 409 and again.json()["error"] == "invalid_status"
    assert await count(services.db, "remediation_actions",
                       "target_kind = 'delivery' AND target_id = :id", id=delivery) == 1


async def test_retry_failed_skips_role_changes_that_no_longer_apply(
        client: httpx.AsyncClient, services: ProcessServices) -> None:
    kept, still_verified = await refused_grant(services)
    moved, no_longer = await refused_grant(services)
    await services.transitions.apply(cmd(Operation.REVERIFY, moved))
    body = (await client.post(f"{BASE}/retry-failed", json=ACTOR)).json()
    # The reverify queued a removal, which is pending: only the two grants had failed.
    assert (body["matched"], body["requeued"], body["stale"]) == (2, 1, 1)
    assert body["requeued_ids"] == [still_verified] and body["stale_ids"] == [no_longer]
    assert (await client.get(f"{BASE}/{no_longer}")).json()["status"] == "skipped"
    assert (await client.get(BASE)).json()["items"] == []
    assert kept != moved


async def test_bad_input_is_refused_and_changes_nothing(
        client: httpx.AsyncClient, services: ProcessServices) -> None:
    _, delivery = await refused_grant(services)
    for path, body in ((f"{BASE}/{delivery}/retry", {}),
                       (f"{BASE}/{delivery}/retry", {"actor_id": "12x"}),
                       (f"{BASE}/retry-failed", {**ACTOR, "kind": "email"}),
                       (f"{BASE}/retry-failed", {**ACTOR, "extra": 1})):
        assert (await client.post(path, json=body)).status_code == 422, (path, body)
    assert (await client.get(BASE, params={"status": "lost"})).status_code == 422
    for cursor in ("abc", "9" * 19, str(2**63)):  # found by schemathesis: a 500 past int64
        assert (await client.get(BASE, params={"cursor": cursor})).status_code == 422, cursor
    assert (await client.get(f"{BASE}/0")).status_code == 422
    assert (await client.get(BASE)).json()["items"][0]["status"] == "dead_lettered"
    assert await count(services.db, "remediation_actions") == 0
