"""The one place that maps domain errors to HTTP statuses, and the answer to the unforeseen."""

from __future__ import annotations

import importlib
import pkgutil

import httpx

import domain
from bot.api.errors import STATUS_BY_CODE, status_for
from bot.container import Container
from domain.errors import DomainError, InvalidInput, StrictConflict, TransitionDeadLettered
from domain.lifecycle import Operation, TransitionNotAllowed
from domain.persistence.faults import Point, connection_dropped
from tests.helpers import GUILD, count, next_user
from tests.wiring import ProcessServices


def _domain_errors() -> set[type[DomainError]]:
    for module in pkgutil.walk_packages(domain.__path__, "domain."):
        importlib.import_module(module.name)
    found: set[type[DomainError]] = set()
    pending: list[type[DomainError]] = [DomainError]
    while pending:
        cls = pending.pop()
        if cls.__module__.startswith("domain"):
            found.add(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_every_domain_error_code_has_an_explicit_status() -> None:
    missing = {cls.__name__: cls.code for cls in _domain_errors()
               if cls.code not in STATUS_BY_CODE}
    assert not missing, f"map these codes in bot/api/errors.py: {missing}"


def test_statuses_of_the_answers_callers_act_on() -> None:
    assert status_for(InvalidInput("x")) == 422
    assert status_for(TransitionNotAllowed(Operation.VERIFY, None)) == 422
    assert status_for(StrictConflict("joined", 1, None, 0)) == 409
    assert status_for(TransitionDeadLettered(7, "retries_exhausted", "x")) == 503

    class Unmapped(InvalidInput):
        code = "some_new_code"

    assert status_for(Unmapped("x")) == 422  # falls back to its parent's status


async def test_an_unexpected_error_is_a_500_in_the_error_shape(
        client: httpx.AsyncClient, container: Container) -> None:
    async def broken(guild_id: int, user_id: int) -> None:
        raise RuntimeError("boom")

    container.transitions.get_member = broken  # type: ignore[method-assign]
    response = await client.get(f"/api/v1/guilds/{GUILD}/members/1",
                                headers={"X-Correlation-ID": "req-500"})
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error" and "boom" not in body["detail"]
    assert "req-500" in body["detail"]


async def test_an_unknown_query_parameter_is_refused_and_named(client) -> None:  # type: ignore[no-untyped-def]
    resp = await client.get("/api/v1/guilds/1/dead-letters", params={"stauts": "open"})
    assert resp.status_code == 422
    assert resp.json()["error"] == "invalid_input" and "stauts" in resp.json()["detail"]


async def test_a_dead_letter_that_cannot_be_written_is_a_503_not_a_500(
        client: httpx.AsyncClient, services: ProcessServices) -> None:
    """The write fails unexpectedly and the connection drops while its dead letter is
    written: nothing reached the database, and the web app hears 'database unavailable'
    (try again), not an internal error."""
    user = next_user()
    services.faults.fail(Point.MEMBERS_WRITE, lambda: RuntimeError("disk full"))
    services.faults.fail(Point.DEAD_LETTERS_INSERT, connection_dropped, times=1)
    response = await client.post(f"/api/v1/guilds/{GUILD}/members/{user}/transitions",
                                 json={"operation": "join", "idempotency_key": "dl-drop"})
    services.faults.clear()
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "database_unavailable"
    assert await count(services.db, "dead_letters") == 0
    assert await count(services.db, "members", "user_id = :u", u=user) == 0
