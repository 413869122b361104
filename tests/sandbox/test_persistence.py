"""A sandbox with a data directory keeps its world across restarts (``--serve``, ``--data-dir``).

Saved: users, guilds, roles, channels and their overwrites, members, bans, messages, synced
commands and their grants, recent nonces. A damaged file stops the start with an error that
names it; the file is left as it was.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from sandbox import Perm, Sandbox, SandboxConfig, WorldFileError, world_codec
from sandbox.persistence import FILENAME

from .support import bot_with_commands, cached_guild, dlq_group, running, text_channel

pytestmark = pytest.mark.asyncio

ROOT = Path(__file__).resolve().parents[2]


def _config(data_dir: Path) -> SandboxConfig:
    return SandboxConfig(data_dir=data_dir, save_delay=0.01, message_rate_per=1.0)


def _all_ids(sandbox: Sandbox) -> set[int]:
    world = sandbox.world
    ids = {*world.users, *world.guilds, *world.channels, *world.messages}
    for guild in world.guilds.values():
        ids |= set(guild.roles)
    return ids


def _view(sandbox: Sandbox, guild_id: int) -> dict[str, object]:
    """What a person looks at in a server, by id."""
    guild = sandbox.guild(guild_id)
    general = guild.channel_named("general")
    return {
        "members": {m.id: (m.user.username, m.roles, m.pending) for m in guild.members.values()},
        "messages": [(m.id, m.author.id, m.content) for m in sandbox.messages(general)],
        "channels": {c.id: (c.name, c.overwrites) for c in guild.channels.values()},
        "roles": {r.id: (r.name, r.position, r.permissions) for r in guild.roles.values()},
    }


def _everything(sandbox: Sandbox) -> dict[str, object]:
    """The whole saved form of the world, less what moves with the clock."""
    data = world_codec.encode(sandbox.core)
    data.pop("saved_at")
    data.pop("highest_id")  # a new sandbox has made an id or two before it loads
    data["nonces"] = [{**n, "age": None} for n in data["nonces"]]
    return data


async def test_the_world_is_the_same_after_a_restart(tmp_path):
    async with Sandbox(_config(tmp_path)) as first:
        assert not first.resumed
        guild = first.create_guild("Kept", channels=("general", "mod-log"),
                                   roles={"Staff": int(Perm.MANAGE_GUILD)})
        staff = guild.role_named("Staff")
        alice = first.member_join(guild, None, "alice", pending=False, roles=[staff.id])
        first.member_join(guild, None, "bob")
        first.ban(guild, 4242)
        first.deny_channel("mod-log", guild)
        first.user_message("general", alice.id, "hello from alice", guild=guild)
        async with running(first, bot_with_commands(guild, dlq_group())) as bot:
            posted = await text_channel(bot, guild.channel_named("general").id).send(
                "log line", nonce="row-1")
        first.grant_command(guild, "dlq", staff.id)
        before = _view(first, guild.id)
        everything = _everything(first)
        old_ids = _all_ids(first)
        bot_user = first.bot_user.id

    async with Sandbox(_config(tmp_path)) as second:
        assert second.resumed and second.bot_user.id == bot_user
        again = second.guild(guild.id)
        assert again.name == "Kept" and set(again.bans) == {4242}
        assert _everything(second) == everything
        after = _view(second, guild.id)
        assert after == before
        # A member who joins now gets an id above every id of the old world.
        carol = second.member_join(again, None, "carol")
        assert carol.id > max(old_ids)
        # A bot connecting to the restarted sandbox sees the saved server, and the nonce it
        # sent before the restart still returns its first message.
        async with running(second, bot_with_commands(again, dlq_group())) as bot:
            cached = cached_guild(bot, again.id)
            assert {m.id for m in cached.members} == set(again.members)
            resent = await text_channel(bot, again.channel_named("general").id).send(
                "log line", nonce="row-1")
            assert resent.id == posted.id
            # /dlq (re-synced by name, same id) and its grant to Staff: alice may still run it.
            reply = await second.slash_command(again, alice.id, "dlq retry", {"job": 1}
                                               ).wait_message()
            assert reply.content == "retrying 1 force=False"
    assert [p.name for p in tmp_path.iterdir()] == [FILENAME]  # no temporary files left


async def test_ids_after_a_restart_stay_above_a_world_saved_with_a_clock_ahead(tmp_path):
    async with Sandbox(_config(tmp_path)) as first:
        # The machine's clock ran an hour ahead when this world was made, then was corrected.
        ahead = first.world.ids.next() + ((3600 * 1000) << 22)
        guild = first.create_guild("From the future", guild_id=ahead)
        old = first.user_message("general", guild.owner_id, "hi", guild=guild)
    async with Sandbox(_config(tmp_path)) as second:
        newcomer = second.member_join(guild.id, None, "erin")
        later = second.user_message("general", newcomer.id, "hello", guild=guild.id)
        assert old.id < newcomer.id < later.id


async def test_changes_are_saved_while_running_without_a_stop(tmp_path):
    path = tmp_path / FILENAME
    async with Sandbox(_config(tmp_path)) as running_sandbox:
        guild = running_sandbox.create_guild("Live")
        member = running_sandbox.member_join(guild, None, "dave")

        def saved_with_dave() -> bool:
            return path.exists() and str(member.id) in path.read_text()

        await running_sandbox.wait_until(saved_with_dave)
        # As if the process were killed now: another sandbox reads what is on disk.
        async with Sandbox(_config(tmp_path)) as reader:
            assert member.id in reader.guild(guild.id).members


@pytest.mark.parametrize("content, why", [
    ("{not json", "not valid JSON"),
    ('{"format": "lifeline-sandbox-world", "version": 1}', "missing field 'users'"),
    ('{"format": "something else"}', "not a sandbox world file"),
])
async def test_a_damaged_world_file_refuses_to_start_and_names_the_file(tmp_path, content, why):
    path = tmp_path / FILENAME
    path.write_text(content)
    sandbox = Sandbox(_config(tmp_path))
    with pytest.raises(WorldFileError) as refused:
        await sandbox.start()
    assert str(path) in str(refused.value) and why in str(refused.value)
    assert "Move the file aside" in str(refused.value)
    assert path.read_text() == content  # nothing overwritten


async def test_an_unreadable_world_file_refuses_to_start(tmp_path):
    (tmp_path / FILENAME).mkdir()  # exists but cannot be read as a file, even by root
    with pytest.raises(WorldFileError, match="cannot be read"):
        await Sandbox(_config(tmp_path)).start()


async def _standalone(data_dir: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandbox", "--port", "0", "--data-dir", str(data_dir), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def _until_serving(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    seen = ""
    while "Ctrl-C to stop." not in seen:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert line, "the sandbox ended before serving: " + seen
        seen += line.decode()
    return seen


async def test_standalone_sandbox_keeps_its_demo_guild_across_restarts(tmp_path):
    proc = await _standalone(tmp_path)
    first = await _until_serving(proc)
    assert "demo guild:" in first
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 20) == 0
    saved = json.loads((tmp_path / FILENAME).read_text())
    assert [g["name"] for g in saved["guilds"]] == ["Lifeline Demo"]

    proc = await _standalone(tmp_path)
    second = await _until_serving(proc)
    assert "saved world:" in second and "1 guilds" in second and "demo guild:" not in second
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 20) == 0

    (tmp_path / FILENAME).write_text("[1, 2")
    proc = await _standalone(tmp_path)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2 and "Traceback" not in err.decode()
    assert err.decode().startswith(f"sandbox: cannot load the saved sandbox world from "
                                   f"{tmp_path / FILENAME}: it is not valid JSON")


async def test_the_demo_refuses_a_damaged_world_in_one_line(tmp_path):
    """`python -m bot sandbox --serve` reads DATA_DIR/sandbox/world.json before anything else."""
    world_file = tmp_path / "sandbox" / FILENAME
    world_file.parent.mkdir()
    world_file.write_text('{"format": "lifeline-sandbox-world", "version": 99}')
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "TEST_DATABASE_URL", "API_TOKEN", "DISCORD_TOKEN")}
    env.update(PYTHONPATH=str(ROOT), DATA_DIR=str(tmp_path))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "sandbox", "--serve", "--port", "0", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2 and "Traceback" not in err.decode()
    assert err.decode().strip().splitlines() == [
        f"lifeline: cannot load the saved sandbox world from {world_file}: it is not a sandbox "
        "world this version can read (world file version 99; this sandbox reads version 1). "
        "Move the file aside (or delete it) to start with a fresh world."]
    assert not (tmp_path / "pg").exists()  # refused before the database was started
