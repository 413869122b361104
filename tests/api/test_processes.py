"""Two real `python -m bot api` processes against one PostgreSQL: idempotency and races.

Counts are printed (run with -s) for the closing note.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from domain.lifecycle import State
from tests.api.support import AUTH, TOKEN
from tests.helpers import (
    GUILD,
    check_invariants,
    count,
    drive,
    next_user,
    path_to,
    postmasters,
)
from tests.wiring import ProcessServices

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60

pytestmark = pytest.mark.slow


@dataclass
class ApiProcess:
    process: asyncio.subprocess.Process
    url: str
    stderr: Path

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")[-4000:]


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k.upper() not in ("API_TOKEN", "DATABASE_URL", "API_PORT", "API_HOST")}
    env.update(LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1", **overrides)
    return env


async def _start(database_url: str, tmp: Path, name: str) -> ApiProcess:
    stderr = tmp / f"{name}.stderr"
    with stderr.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "api", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
            stderr=sink, env=_env(DATABASE_URL=database_url, API_TOKEN=TOKEN,
                                  API_HOST="127.0.0.1", API_PORT="0", DATA_DIR=str(tmp)))
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), STARTUP_SECONDS)
    match = re.fullmatch(rb"API listening on (http://127\.0\.0\.1:\d+)\n", line)
    assert match, f"{name} printed {line!r}; stderr:\n{stderr.read_text()}"
    api = ApiProcess(process, match.group(1).decode(), stderr)
    await _wait_healthy(api)
    return api


async def _wait_healthy(api: ApiProcess) -> None:
    deadline = asyncio.get_running_loop().time() + STARTUP_SECONDS
    async with httpx.AsyncClient(base_url=api.url) as http:
        while True:
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert api.process.returncode is None, api.log()
            assert asyncio.get_running_loop().time() < deadline, "API never became healthy"
            await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
async def two_apis(migrated: str, tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[tuple[ApiProcess, ApiProcess]]:
    tmp = tmp_path_factory.mktemp("api-processes")
    apis = await asyncio.gather(_start(migrated, tmp, "a"), _start(migrated, tmp, "b"))
    try:
        yield apis[0], apis[1]
    finally:
        for api in apis:
            if api.process.returncode is None:
                api.process.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(api.process.wait(), 30) for api in apis]
        # A clean stop on SIGTERM: exit code 0, nothing but warnings on stderr.
        assert codes == [0, 0], [api.log() for api in apis]
        for api in apis:
            assert "Traceback" not in api.log(), api.log()


@pytest.fixture
async def clients(two_apis: tuple[ApiProcess, ApiProcess]
                  ) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=two_apis[0].url, headers=AUTH, limits=limits,
                                 timeout=30) as a, \
            httpx.AsyncClient(base_url=two_apis[1].url, headers=AUTH, limits=limits,
                              timeout=30) as b:
        yield a, b


async def _cas_conflicts(clients: tuple[httpx.AsyncClient, ...]) -> float:
    total = 0.0
    for http in clients:
        for family in text_string_to_metric_families((await http.get("/metrics")).text):
            total += sum(s.value for s in family.samples
                         if s.name == "lifeline_cas_conflicts_total")
    return total


async def test_the_same_key_sent_to_two_processes_at_once_applies_once(
        services: ProcessServices, clients: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    a, b = clients
    members = [next_user() for _ in range(30)]
    operations = path_to(State.VERIFIED)
    answers: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    async def chain(user: int) -> None:
        for op in operations:
            key = f"{op.value}-{uuid.uuid4().hex}"
            body = {"operation": op.value, "idempotency_key": key}
            url = f"/api/v1/guilds/{GUILD}/members/{user}/transitions"
            first, second = await asyncio.gather(a.post(url, json=body),
                                                 b.post(url, json=body))
            assert first.status_code == 200 and second.status_code == 200, \
                (first.text, second.text)
            answers.append((key, first.json(), second.json()))

    await asyncio.gather(*(chain(user) for user in members))
    keys = len(members) * len(operations)
    assert len(answers) == keys
    for key, one, two in answers:
        assert one["transition_id"] == two["transition_id"], key
        assert {one["applied"], two["applied"]} == {True, False}, key
        assert one["member"] == two["member"], key
    assert await count(services.db, "member_transitions") == keys
    assert await count(services.db, "members", "state = 'verified'") == len(members)
    assert await count(services.db, "dead_letters") == 0
    await check_invariants(services.db)
    applied_by_a = sum(one["applied"] for _, one, _ in answers)
    print(f"\nidempotency across 2 API processes: {keys} keys x 2 requests, "
          f"ledger rows {keys}, first applied by A {applied_by_a} / by B {keys - applied_by_a}")


async def test_verify_and_reject_race_through_two_processes_loses_nothing(
        services: ProcessServices, clients: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    members = [next_user() for _ in range(50)]
    await asyncio.gather(*(drive(services, user, State.VERIFICATION_PENDING)
                           for user in members))
    conflicts_before = await _cas_conflicts(clients)
    outcomes: Counter[str] = Counter()

    async def race(i: int, user: int) -> None:
        first, second = clients if i % 2 == 0 else clients[::-1]
        strict = {"expected_state": "verification_pending", "expected_version": 5} \
            if i % 3 == 0 else {}
        url = f"/api/v1/guilds/{GUILD}/members/{user}/transitions"
        responses = await asyncio.gather(
            first.post(url, json={"operation": "verify", "idempotency_key": f"v{i}", **strict}),
            second.post(url, json={"operation": "reject", "idempotency_key": f"r{i}",
                                   **strict}))
        applied = 0
        for response in responses:
            body = response.json()
            if response.status_code == 200:
                assert body["applied"] is True
                applied += 1
                outcomes["applied"] += 1
            elif response.status_code == 422:
                assert body["error"] == "transition_not_allowed", body
                outcomes["refused (422 not allowed)"] += 1
            elif response.status_code == 409:
                assert body["error"] == "version_conflict", body
                assert body["current_version"] == 6
                outcomes["conflicts (409 strict)"] += 1
            else:  # lifecycle.md step 6: never a dead letter for a caller who waits
                raise AssertionError(response.text)
        assert applied == 1, [r.text for r in responses]

    await asyncio.gather(*(race(i, user) for i, user in enumerate(members)))
    assert sum(outcomes.values()) == 2 * len(members)  # every write was answered
    assert await count(services.db, "members", "state IN ('verified', 'rejected_not_eligible') "
                       "AND version = 6") == len(members)
    assert await count(services.db, "dead_letters") == 0
    await check_invariants(services.db)
    conflicts = await _cas_conflicts(clients) - conflicts_before
    print(f"\nverify vs reject on {len(members)} members through 2 API processes: "
          f"{dict(outcomes)}, CAS conflicts seen by the processes: {conflicts:.0f}")


async def test_api_without_a_token_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "api", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=_env(DATA_DIR=str(tmp_path)))
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert stdout == b""
    assert stderr.decode().splitlines() == [
        "lifeline: API_TOKEN is not set; the HTTP API refuses to start without it (and the "
        "console's settings are not set either)"]
    assert not (tmp_path / "pg").exists()  # it gave up before starting anything


async def test_api_on_the_embedded_default_stops_it_on_sigint(tmp_path: Path) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="lla-", dir="/tmp"))  # short: the socket is there
    stderr = tmp_path / "api.stderr"
    with stderr.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "api", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
            stderr=sink, env=_env(API_TOKEN=TOKEN, API_PORT="0", DATA_DIR=str(data_dir)))
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), STARTUP_SECONDS)
        match = re.fullmatch(rb"API listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, stderr.read_text()
        api = ApiProcess(process, match.group(1).decode(), stderr)
        await _wait_healthy(api)
        assert postmasters(data_dir / "pg")
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 30) == 0, api.log()
        assert not postmasters(data_dir / "pg")
    finally:
        if process.returncode is None:
            process.kill()
        shutil.rmtree(data_dir, ignore_errors=True)
