"""README's "Try it", copied literally: `python -m bot sandbox --serve` in a process of its
own, the `export` lines it prints, then the README's shell block run by bash as written."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import socket
import sys
import tempfile
import urllib.request
from pathlib import Path

from tests.entrypoints.test_bot_process import ROOT, child_env, read_until
from tests.helpers import postmasters

MARKUP = re.compile(r"<(@!?|@&|#)\d+>|<t:\d+")


def try_it_block() -> str:
    """The README's second ```bash block under "### Try it" (the first starts the demo)."""
    readme = (ROOT / "README.md").read_text()
    section = re.split(r"\n##+ ", readme.split("### Try it", 1)[1], maxsplit=1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2, "Try it: one block to start the demo, one to paste"
    return str(blocks[1])


def exports(lines: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in lines:
        if line.strip().startswith("export "):
            for pair in line.split()[1:]:
                name, _, value = pair.partition("=")
                found[name] = value
    return found


def json_values(output: str) -> list[object]:
    """The JSON documents in `output`, in order (curl prints them without a newline)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while (found := re.compile(r"[{\[]").search(output, at)) is not None:
        try:
            value, at = decoder.raw_decode(output, found.start())
        except json.JSONDecodeError:
            at = found.start() + 1
        else:
            values.append(value)
    return values


def _get(url: str, token: str | None = None) -> str:
    request = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(answer.read().decode())


async def test_the_readme_try_it_block_works_as_written() -> None:
    assert shutil.which("curl"), "curl is needed to run README's Try it as written"
    assert (ROOT / ".venv/bin/python").exists(), "README's Try it uses .venv/bin/python"
    data_dir = Path(tempfile.mkdtemp(prefix="llt-", dir="/tmp"))
    env = child_env(DATA_DIR=str(data_dir), API_PORT="0", LOG_LEVEL="WARNING")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "sandbox", "--serve", "--port", "0", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        printed = await read_until(proc.stdout, "Staff console:", 120)
        values = exports(printed)
        assert {"SANDBOX", "LIFELINE_API", "LIFELINE_API_TOKEN", "GUILD", "OWNER", "STAFF",
                "MOD_LOG", "ALICE", "CAROL", "DAVE"} <= set(values), printed
        members = "".join(printed)
        assert "sam-staff" in members and values["STAFF"] in members and "staff" in members
        assert not MARKUP.search(members), members
        # The staff console answers at the address printed, offline.
        console = next(line for line in printed if "Staff console:" in line).split()[2]
        page = await asyncio.to_thread(_get, console)
        assert "Log in with Discord" in page
        # Its overview already counts the story's dead letters (no 5-minute wait).
        overview = json.loads(await asyncio.to_thread(
            _get, f"{values['LIFELINE_API']}/api/v1/guilds/{values['GUILD']}/overview",
            values["LIFELINE_API_TOKEN"]))
        assert overview["days"][-1]["new_entries"] > 0, overview["days"][-1]

        shell = await asyncio.create_subprocess_exec(
            "bash", "-e", "-o", "pipefail", "-c", try_it_block(), cwd=ROOT,
            env={**env, **values}, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(shell.communicate(), 120)
        finally:
            if shell.returncode is None:  # stuck (its wait for Lifeline never ended)
                shell.kill()
                await shell.wait()
        output = out.decode()
        assert shell.returncode == 0, err.decode()[-3000:] + output[-3000:]
        verify, staff_verify, member, ledger, stats, page, log = json_values(output)[:7]
        assert isinstance(verify, dict) and isinstance(staff_verify, dict)
        assert "verification request is in" in verify["text"][0], verify
        assert "verification_pending → verified" in staff_verify["text"][0], staff_verify
        assert member == {**member, "state": "verified", "guild_id": values["GUILD"]}, member
        assert isinstance(ledger, dict) and isinstance(stats, dict) and isinstance(page, dict)
        assert [i["operation"] for i in ledger["items"]][:2] == ["verify",
                                                                 "request_verification"]
        assert stats["total"] >= 1 and page["items"], (stats, page)
        assert all(i["guild_id"] == values["GUILD"] for i in page["items"])  # ids: strings
        assert isinstance(log, list) and log, "the log channel shows the demo's lines"
        assert "in total" in output or "shown of" in output, output[-2000:]  # dlq list

        await beside_a_serving_demo(env)
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        if proc.returncode is None:  # a failed check: SIGTERM stops its embedded PostgreSQL
            proc.terminate()        # (a SIGKILL would leave that server running)
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    assert proc.stderr is not None
    assert "Traceback" not in (await proc.stderr.read()).decode()
    assert postmasters(data_dir / "pg") == []


async def beside_a_serving_demo(env: dict[str, str]) -> None:
    """While `--serve` runs, another demo in the same DATA_DIR (the scripted story, or a
    second `--serve` on other ports) says in one line why it cannot, and what to do."""
    for args in ([], ["--serve", "--port", "0"]):
        other = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "sandbox", *args, cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(other.communicate(), 60)
        lines = [line for line in err.decode().splitlines() if line.startswith("lifeline:")]
        assert other.returncode == 1 and len(lines) == 1, err.decode()[-3000:]
        assert "in use by another process" in lines[0] and "DATA_DIR=.data-2" in lines[0]
        assert "Traceback" not in err.decode()


async def test_a_taken_port_is_one_line_naming_the_fix() -> None:
    """A second `--serve` (a demo is already running) says so; no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for args, settings, fix in ((["--port", port], {"API_PORT": "0"}, "--port"),
                                    (["--port", "0"], {"API_PORT": port}, "API_PORT")):
            data_dir = Path(tempfile.mkdtemp(prefix="llp-", dir="/tmp"))
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "sandbox", "--serve", *args, cwd=ROOT,
                env=child_env(DATA_DIR=str(data_dir), **settings),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(proc.communicate(), 60)
            lines = [line for line in err.decode().splitlines() if line.startswith("lifeline:")]
            assert proc.returncode == 2, err.decode()[-2000:]
            assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and fix in lines[0]
            assert "Traceback" not in err.decode()
            assert postmasters(data_dir / "pg") == []
