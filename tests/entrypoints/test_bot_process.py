"""The real entrypoints as subprocesses: `python -m bot run` against the sandbox, and the
`python -m bot sandbox` demo."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path

import pytest

from sandbox import Sandbox, SandboxConfig
from tests.helpers import postmasters

ROOT = Path(__file__).resolve().parents[2]


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "TEST_DATABASE_URL", "API_TOKEN", "DISCORD_TOKEN")}
    env.update({"PYTHONPATH": str(ROOT), "LOG_LEVEL": "INFO"})
    env.update(extra)
    return env


async def read_until(stream: asyncio.StreamReader, marker: str, timeout: float) -> list[str]:
    lines: list[str] = []

    async def read() -> None:
        while True:
            raw = await stream.readline()
            if not raw:
                raise AssertionError("the process ended before: " + marker + "\n"
                                     + "".join(lines))
            lines.append(raw.decode())
            if marker in lines[-1]:
                return

    await asyncio.wait_for(read(), timeout)
    return lines


async def test_run_logs_in_syncs_answers_and_stops_cleanly_on_sigterm() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="llr-", dir="/tmp"))
    async with Sandbox(SandboxConfig()) as sandbox:
        guild = sandbox.create_guild("Smoke", channels=("general", "mod-log"),
                                     roles={"Verified": 0})
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=ROOT,
            env=child_env(DATA_DIR=str(data_dir), DISCORD_TOKEN=sandbox.token,
                     DISCORD_API_BASE=sandbox.api_url, DISCORD_GATEWAY_URL=sandbox.gateway_url),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            assert proc.stdout is not None
            await read_until(proc.stdout, "Lifeline is running as", 60)
            synced = {c["name"] for c in sandbox.commands()}
            assert {"dlq", "member", "lifeline", "verify"} <= synced
            handle = sandbox.slash_command(guild, guild.owner_id, "lifeline setup", {
                "log_channel": sandbox.channel("mod-log", guild).id,
                "verified_role": guild.role_named("Verified").id})
            reply = await handle.wait_message(timeout=20)
            assert "Lifeline is set up" in reply.content
            assert postmasters(data_dir / "pg"), "the embedded database runs"
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.stderr is not None
        stderr = (await proc.stderr.read()).decode()
        assert code == 0, stderr[-3000:]
        assert "stopped cleanly" in stderr and "Traceback" not in stderr
        assert sandbox.token not in stderr
        assert not sandbox.unknown_routes, sandbox.unknown_routes
    assert postmasters(data_dir / "pg") == [], "the embedded database was stopped"


async def test_run_without_a_token_is_one_line() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=ROOT, env=child_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert err.decode().count("\n") == 1 and "DISCORD_TOKEN is not set" in err.decode()


@pytest.mark.parametrize("port", ["99999", "-1", "８０"])
async def test_a_sandbox_port_out_of_range_is_refused_in_one_line(port: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "sandbox", "--serve", "--port", port, cwd=ROOT,
        env=child_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2 and "Traceback" not in err.decode()
    assert "--port: must be a port number, 0 to 65535" in err.decode()


async def test_run_with_a_rejected_token_is_one_line() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="llt-", dir="/tmp"))
    async with Sandbox(SandboxConfig()) as sandbox:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=ROOT,
            env=child_env(DATA_DIR=str(data_dir), DISCORD_TOKEN="not-the-token",
                     DISCORD_API_BASE=sandbox.api_url, DISCORD_GATEWAY_URL=sandbox.gateway_url),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    errors = [line for line in err.decode().splitlines() if line.startswith("lifeline:")]
    assert errors == ["lifeline: Discord rejected DISCORD_TOKEN (check the bot token)"]
    assert "Traceback" not in err.decode()
    assert "not-the-token" not in err.decode() + out.decode()


async def test_the_sandbox_demo_tells_the_whole_story() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="lld-", dir="/tmp"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "sandbox", cwd=ROOT, env=child_env(DATA_DIR=str(data_dir)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    transcript = out.decode()
    assert proc.returncode == 0, err.decode()[-3000:]
    for expected in ("Lifeline is set up", "alice was granted the Verified role",
                     "leaves the server at the moment the web app verifies him",
                     "dead-lettered", "/dlq list", "/dlq retry",
                     "What ops read in #mod-log", "🟥 Dead letter", "🛠️ @sam-staff",
                     "Lifeline's role is below the verified role",
                     "queued again", "dave was granted the Verified role",
                     "retried failed deliveries D"):
        assert expected in transcript, expected
    # The storm's entry is replayed if carol did not change after it was recorded, else it
    # is stale: shown with what changed, and not replayed.
    assert "resolved:" in transcript or (
        "is stale" in transcript and "Not replayed." in transcript), transcript[-3000:]
    # Names, not Discord's markup: users, roles, channels and times as a person reads them.
    for markup in ("<@", "<#", "<t:"):
        assert markup not in transcript, transcript[transcript.index(markup) - 200:][:400]
    for named in ("log_channel:#mod-log", "verified_role:@Verified", "Log channel: #mod-log",
                  "user:@dave", "@carol"):
        assert named in transcript, named
    assert "Traceback" not in err.decode()
    assert postmasters(data_dir / "pg") == []
