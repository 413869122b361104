"""Property-based: schemathesis generates requests from /api/v1/openapi.json.

The API runs in a real uvicorn on 127.0.0.1:0, in a thread with its own event loop and pool
(the generated tests are synchronous). Every answer must be documented, match its schema,
and never be a 5xx; invalid data must be refused.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from bot.api.app import create_app
from bot.api.server import ApiServer
from domain.persistence.database import Database
from tests.api.support import AUTH, build_container
from tests.wiring import ProcessServices

MAX_EXAMPLES = 25  # per operation; 13 operations
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection]


@pytest.fixture(scope="module")
def live_api(migrated: str) -> Iterator[str]:
    state: dict[str, Any] = {}
    ready = threading.Event()

    async def serve() -> None:
        db = Database(migrated, pool_size=4, max_overflow=4)
        try:
            server = ApiServer(build_container(ProcessServices(db), migrated),
                               host="127.0.0.1", port=0)
            await server.start()
            state.update(url=server.url, loop=asyncio.get_running_loop(), stop=asyncio.Event())
            ready.set()
            await state["stop"].wait()
            await server.stop()
        finally:
            await db.dispose()
            ready.set()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), name="schemathesis-api")
    thread.start()
    assert ready.wait(30) and "url" in state, "the API did not start"
    try:
        yield state["url"]
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(30)
        assert not thread.is_alive()


# schemathesis's fixture-based loader does not run on pytest 9, so the schema is read at
# collection time from an app that never connects; test_the_served_document_is_the_one_tested
# checks it is exactly what the live server serves at /api/v1/openapi.json.
SPEC = create_app(build_container(ProcessServices(Database("postgresql+asyncpg://spec@localhost/spec")),
                                  "postgresql://spec@localhost/spec")).openapi()


def _without_security(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec schemathesis generates from: every request carries the right token (sent by
    the test), so the security requirement is taken out. Otherwise its negative cases drop
    the Authorization header, the test adds it back, and a correct 200 reads as "invalid
    data accepted". Authentication itself is tested in test_guard.py."""
    copy = json.loads(json.dumps(spec))
    copy.get("components", {}).pop("securitySchemes", None)
    for path in copy["paths"].values():
        for operation in path.values():
            if isinstance(operation, dict):
                operation.pop("security", None)
    return copy


schema = schemathesis.openapi.from_dict(_without_security(SPEC))


def test_the_served_document_is_the_one_tested(live_api: str) -> None:
    served = httpx.get(f"{live_api}/api/v1/openapi.json", timeout=10)
    assert served.status_code == 200 and served.json() == SPEC


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_every_generated_request_gets_a_documented_answer(case: Any, live_api: str) -> None:
    case.call_and_validate(base_url=live_api, headers=AUTH, checks=CHECKS, timeout=10)
