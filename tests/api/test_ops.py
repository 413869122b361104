"""/healthz, /metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from bot.api import routes_ops
from bot.api.app import create_app
from bot.container import Container
from domain.ingest.events import EventKind, MemberEvent
from domain.ingest.log import IngestLog
from domain.ingest.pipeline import Ingestion
from domain.lifecycle import State
from domain.mirror import transition_facts
from domain.persistence.database import Database
from domain.persistence.faults import Point
from tests.api.support import AUTH, build_container, dead_letter
from tests.helpers import GUILD, drive, next_user
from tests.wiring import ProcessServices


def _samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(exposition) for s in family.samples}


@pytest.fixture
async def anonymous(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(container), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield http


async def _client_for(container: Container, **kw: object) -> httpx.AsyncClient:
    app = create_app(container, **kw)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


async def test_healthz_is_ok_without_a_token(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/healthz")
    assert response.status_code == 200
    # An API-only replica: no gateway, no ingest pipeline.
    assert response.json() == {"status": "ok", "database": "ok", "gateway": "not_in_process",
                               "ingest": None, "failing": []}


async def test_healthz_and_metrics_report_the_ingest_lag_and_fail_past_the_setting(
        services: ProcessServices, migrated: str, tmp_path: Path) -> None:
    """Events wait in the ingest log (its workers are held at the database): /healthz
    reports the lag and backlog, and answers 503 naming `ingest` once the oldest waiting
    event is older than INGEST_LAG_UNHEALTHY_SECONDS; /metrics exports the same."""
    container = build_container(services, migrated)
    gate = services.faults.hold(Point.MEMBERS_READ, times=None)
    ingestion = Ingestion(IngestLog(tmp_path, 1 << 20), services.services.batches,
                          _Nobody(), workers=1)
    await ingestion.start()
    container.ingestion = ingestion
    try:
        for user in range(1, 4):
            await ingestion.submit(MemberEvent.membership(
                EventKind.JOIN, GUILD, next_user() + user, time.time(), joined_at_ms=1))
        async with await _client_for(container) as http:
            fresh = await http.get("/healthz")  # a lag under the default 60 s
            assert fresh.status_code == 200
            assert fresh.json()["ingest"]["backlog"] == 3
            lag = fresh.json()["ingest"]["lag_seconds"]
            assert lag > 0
            container.settings = container.settings.model_copy(  # now past the setting
                update={"ingest_lag_unhealthy_seconds": lag / 2})
            late = await http.get("/healthz")
            assert late.status_code == 503 and late.json()["failing"] == ["ingest"]
            assert late.json()["ingest"]["lag_seconds"] >= lag
            samples = _samples((await http.get("/metrics")).text)
            assert samples[("lifeline_ingest_backlog_events", ())] == 3
            assert samples[("lifeline_ingest_lag_seconds", ())] >= lag
            gate.release()
            await ingestion.wait_idle()
            assert (await http.get("/healthz")).status_code == 200
    finally:
        gate.release()
        await ingestion.stop()


async def test_healthz_fails_while_the_ingest_log_refuses_events(
        services: ProcessServices, migrated: str, tmp_path: Path) -> None:
    """The log is full (its workers held at the database): the next event is refused,
    counted, and /healthz says so at once (503 `ingest`, `refusing`), whatever the lag."""
    container = build_container(services, migrated)
    gate = services.faults.hold(Point.MEMBERS_READ, times=None)
    joins = [MemberEvent.membership(EventKind.JOIN, GUILD, next_user(), time.time(),
                                    joined_at_ms=1) for _ in range(3)]
    room = sum(len(join.to_line()) for join in joins[:2])
    ingestion = Ingestion(IngestLog(tmp_path, room), services.services.batches, _Nobody(),
                          workers=1)
    await ingestion.start()
    container.ingestion = ingestion
    try:
        taken = [await ingestion.submit(join) for join in joins]
        assert taken == [True, True, False]
        async with await _client_for(container) as http:
            health = await http.get("/healthz")
        assert health.status_code == 503 and health.json()["failing"] == ["ingest"]
        assert health.json()["ingest"]["refusing"] is True
        assert health.json()["ingest"]["dropped"] == 1
    finally:
        gate.release()
        await ingestion.stop()


class _Nobody:
    def member_flags(self, guild_id: int, user_id: int,
                     eligibility_role_id: int | None) -> None:
        return None


async def test_healthz_reports_the_gateway_when_the_bot_is_in_process(
        container: Container) -> None:
    connected = True
    async with await _client_for(container, gateway_status=lambda: connected) as http:
        assert (await http.get("/healthz")).json()["gateway"] == "connected"
        connected = False
        response = await http.get("/healthz")
        assert response.status_code == 503
        assert response.json()["failing"] == ["gateway"]
        assert response.json()["gateway"] == "disconnected"


async def test_healthz_says_unreachable_without_naming_the_database(container: Container) -> None:
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = Database(f"postgresql+asyncpg://nobody:hunter2@127.0.0.1:{port}/none")
    try:
        broken = build_container(ProcessServices(down), "postgresql://nobody@127.0.0.1/none")
        async with await _client_for(broken) as http:
            response = await http.get("/healthz")
            metrics = await http.get("/metrics")
            http.headers.update(AUTH)
            read = await http.get(f"/api/v1/guilds/{GUILD}/dead-letters/stats")
            write = await http.post(f"/api/v1/guilds/{GUILD}/members/1/transitions",
                                    json={"operation": "join", "idempotency_key": "k"})
    finally:
        await down.dispose()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy" and body["failing"] == ["database"]
    # No token is needed here: the answer says nothing of where the database is or why.
    assert body["database"] == "unreachable"
    assert str(port) not in response.text and "127.0.0.1" not in response.text
    assert metrics.status_code == 200  # the counters are still served
    assert _samples(metrics.text)[("lifeline_database_up", ())] == 0
    assert read.status_code == 503 and read.json()["error"] == "database_unavailable"
    assert read.headers["retry-after"] == "30"
    assert write.status_code == 503 and write.json()["error"] == "database_unavailable"


async def test_healthz_times_out_on_a_database_that_does_not_answer(
        container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes_ops, "DB_CHECK_SECONDS", 0.2)
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # accept, then never answer

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    silent_db = Database(f"postgresql+asyncpg://x@127.0.0.1:{port}/x")
    try:
        hung = build_container(ProcessServices(silent_db), f"postgresql://x@127.0.0.1:{port}/x")
        async with await _client_for(hung) as http:
            response = await http.get("/healthz")
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await silent_db.dispose()
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


async def test_metrics_count_transitions_and_read_database_gauges(
        client: httpx.AsyncClient, anonymous: httpx.AsyncClient, services: ProcessServices,
        container: Container) -> None:
    user = next_user()
    await client.post(f"/api/v1/guilds/{GUILD}/members/{user}/transitions",
                      json={"operation": "join", "idempotency_key": "m1"})
    await client.post(f"/api/v1/guilds/{GUILD}/members/{user}/transitions",
                      json={"operation": "join", "idempotency_key": "m1"})
    await client.post(f"/api/v1/guilds/{GUILD}/members/{user}/transitions",
                      json={"operation": "verify", "idempotency_key": "m2"})
    pending = next_user()
    await drive(services, pending, State.VERIFICATION_PENDING)
    entry_id = await dead_letter(services, pending)
    await client.post(f"/api/v1/guilds/{GUILD}/dead-letters/{entry_id}/dismiss",
                      json={"actor_id": "1", "note": "n"})
    still_pending = next_user()
    await drive(services, still_pending, State.VERIFICATION_PENDING)
    await dead_letter(services, still_pending)
    container.metrics.delivery("delivered")
    async with services.db.transaction() as conn:
        await conn.execute(text("INSERT INTO guild_settings (guild_id, log_channel_id, "
                                "mirror_level) VALUES (1, 2, 'all')"))
    # three mirror rows (of members 1, 2, 3), in three states
    await services.stores.outbox.enqueue_mirror(
        (1, transition_facts(member, "join", None, "joined", "bot", None))
        for member in (1, 2, 3))
    async with services.db.transaction() as conn:
        await conn.execute(text(
            """UPDATE outbox SET status = CAST(s.status AS delivery_status),
                                 created_at = now() - make_interval(secs => s.age)
               FROM (VALUES ('1', 'pending', 90), ('2', 'retry_scheduled', 0),
                            ('3', 'delivered', 86400)) AS s(user_id, status, age)
               WHERE outbox.payload->>'user_id' = s.user_id AND outbox.guild_id = 1"""))

    response = await anonymous.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("lifeline_transitions_total", operation="join", source="api",
                 outcome="applied") == 1
    assert value("lifeline_transitions_total", operation="join", source="api",
                 outcome="idempotent_repeat") == 1
    assert value("lifeline_transitions_total", operation="verify", source="api",
                 outcome="transition_not_allowed") == 1
    # Two dead letters, each after 5 lost compare-and-sets (4 of them retries).
    assert value("lifeline_cas_conflicts_total", operation="verify") == 10
    assert value("lifeline_transition_retries_total", operation="verify") == 8
    assert value("lifeline_dead_letters_created_total", reason_code="retries_exhausted") == 2
    assert value("lifeline_remediation_actions_total", action="dismiss",
                 outcome="dismissed") == 1
    assert value("lifeline_outbox_deliveries_total", outcome="delivered") == 1
    assert value("lifeline_dead_letters_open", reason_code="retries_exhausted") == 1
    assert value("lifeline_dead_letters_open", reason_code="unexpected_error") == 0
    assert value("lifeline_outbox_pending") == 2
    assert 89 <= value("lifeline_outbox_oldest_pending_age_seconds") < 600
    assert value("lifeline_database_up") == 1


async def test_openapi_is_public_and_complete(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    operations = {(method.upper(), path): op for path, item in spec["paths"].items()
                  for method, op in item.items()}
    g, m, d = "/api/v1/guilds/{guild_id}", "/members/{user_id}", "/dead-letters"
    assert set(operations) == {
        ("GET", g + m), ("GET", g + m + "/transitions"), ("POST", g + m + "/transitions"),
        ("GET", g + d), ("GET", g + d + "/stats"), ("POST", g + d + "/retry-group"),
        ("GET", g + d + "/{entry_id}"), ("POST", g + d + "/{entry_id}/retry"),
        ("POST", g + d + "/{entry_id}/resolve"), ("POST", g + d + "/{entry_id}/dismiss"),
        ("POST", g + d + "/{entry_id}/reopen"), ("POST", g + d + "/retry-all"),
        ("DELETE", g + d + "/{entry_id}"), ("POST", g + d + "/{entry_id}/delete"),
        ("GET", g + "/audit"), ("GET", "/healthz"), ("GET", "/metrics"),
        ("GET", g + "/deliveries"), ("GET", g + "/deliveries/{delivery_id}"),
        ("POST", g + "/deliveries/{delivery_id}/retry"),
        ("POST", g + "/deliveries/retry-failed"), ("GET", g + "/overview")}
    assert spec["components"]["securitySchemes"] == {"HTTPBearer": {
        "type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API_TOKEN>"}}
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for (method, path), op in operations.items():
        if not path.startswith("/api/v1/"):
            assert "security" not in op
            continue
        assert op["security"] == [{"HTTPBearer": []}]
        for status in ("401", "413", "422"):
            assert op["responses"][status]["content"]["application/json"]["schema"] \
                == error_ref, (method, path, status)
    post = operations[("POST", g + m + "/transitions")]
    assert {"200", "409", "422", "503"} <= set(post["responses"])
    ids = {p["name"]: p["schema"] for p in post["parameters"]}
    assert ids["guild_id"]["maximum"] == 2**63 - 1 and ids["guild_id"]["minimum"] == 1
    assert "404" in operations[("GET", g + d + "/{entry_id}")]["responses"]
    assert "unresolved" in operations[("GET", g + d)]["description"]
    assert {"404", "409"} <= set(operations[("DELETE", g + d + "/{entry_id}")]["responses"])
    assert {"200", "503"} <= set(operations[("GET", "/healthz")]["responses"])
    docs = await anonymous.get("/api/v1/docs")
    assert docs.status_code == 200
