"""Gateway protocol, sharding and reconnects."""

from __future__ import annotations

import json
import zlib
from typing import Any

import aiohttp
import discord
import pytest
from discord.ext import commands

from sandbox import Sandbox, SandboxConfig
from sandbox.ids import shard_for

from .support import INTENTS, cached_guild, expect, make_bot, running

pytestmark = pytest.mark.asyncio


class RawGateway:
    """A bare websocket client speaking zlib-stream, to check the protocol itself."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.inflate = zlib.decompressobj()

    async def receive(self) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.BINARY, msg
        assert msg.data.endswith(b"\x00\x00\xff\xff")
        frame: dict[str, Any] = json.loads(self.inflate.decompress(msg.data))
        return frame

    async def send(self, op: int, d: object) -> None:
        await self.ws.send_str(json.dumps({"op": op, "d": d}))


async def test_raw_protocol_hello_heartbeat_identify_chunk(sandbox, guild):
    url = sandbox.gateway_url + "?v=10&encoding=json&compress=zlib-stream"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        gw = RawGateway(ws)
        hello = await gw.receive()
        assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] > 0
        await gw.send(1, None)
        assert (await gw.receive())["op"] == 11
        await gw.send(2, {"token": sandbox.token, "intents": int(INTENTS.value), "properties": {}})
        ready = await gw.receive()
        assert (ready["t"], ready["s"]) == ("READY", 1)
        assert ready["d"]["guilds"] == [{"id": str(guild.id), "unavailable": True}]
        assert ready["d"]["resume_gateway_url"] == sandbox.gateway_url
        create = await gw.receive()
        assert (create["t"], create["s"]) == ("GUILD_CREATE", 2)
        assert create["d"]["member_count"] == len(create["d"]["members"]) == 2
        await gw.send(8, {"guild_id": str(guild.id), "query": "", "limit": 0, "nonce": "n1"})
        chunk = await gw.receive()
        assert (chunk["t"], chunk["s"], chunk["d"]["nonce"]) == ("GUILD_MEMBERS_CHUNK", 3, "n1")
        await gw.send(2, {"token": sandbox.token, "intents": 1})
        closing = await ws.receive(timeout=5)
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 4005


async def test_raw_protocol_rejects_bad_token_and_unknown_opcode(sandbox):
    url = sandbox.gateway_url + "?v=10&encoding=json"
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url) as ws:
            hello = await ws.receive_json(timeout=5)  # no compress asked: plain text frames
            assert hello["op"] == 10
            await ws.send_str(json.dumps({"op": 2, "d": {"token": "wrong", "intents": 1}}))
            closing = await ws.receive(timeout=5)
            assert closing.data == 4004
        async with http.ws_connect(url) as ws:
            await ws.receive_json(timeout=5)
            await ws.send_str(json.dumps({"op": 99, "d": None}))
            assert (await ws.receive(timeout=5)).data == 4001


async def test_disconnect_then_resume_replays_missed_events(sandbox, guild):
    async with running(sandbox, make_bot()) as bot:
        joined = expect(bot, "member_join")
        (session,) = sandbox.connected_sessions
        assert sandbox.disconnect(code=4000) == 1
        sandbox.member_join(guild, 31337, "while-away")  # buffered: the socket is closing
        assert (await joined).id == 31337
        await sandbox.wait_until(lambda: session.resumes == 1 and session.connected)
        assert len(sandbox.all_sessions) == 1
        assert session.events("RESUMED")


class QuickReidentifyBot(commands.Bot):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py waits 5 s before identifying again; Discord's limit is not modelled here."""


class QuickAutoShardedBot(commands.AutoShardedBot):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Same: skip the 5 s pause between the shards' IDENTIFYs."""


async def test_invalidated_session_identifies_again(sandbox, guild):
    bot = QuickReidentifyBot(command_prefix="!", intents=INTENTS, guild_ready_timeout=0.05)
    async with running(sandbox, bot):
        sandbox.disconnect(code=1001, invalidate=True)
        fresh = await sandbox.wait_until(
            lambda: len(sandbox.all_sessions) == 2 and sandbox.connected_sessions
        )
        assert fresh[0] is sandbox.all_sessions[1]
        assert fresh[0].events("READY") and fresh[0].events("GUILD_CREATE")
        sandbox.member_join(guild, 4444, "after")
        member = await bot.wait_for("member_join", timeout=5)
        assert member.id == 4444


async def test_reconnect_request_resumes(sandbox, guild):
    async with running(sandbox, make_bot()):
        (session,) = sandbox.connected_sessions
        assert sandbox.request_reconnect() == 1
        await sandbox.wait_until(lambda: session.resumes == 1 and session.connected)


async def test_two_shard_clients_each_get_only_their_guilds():
    async with Sandbox(SandboxConfig(shard_count=2)) as sandbox:
        first = sandbox.create_guild("Shard zero", shard=0)
        second = sandbox.create_guild("Shard one", shard=1)
        assert (shard_for(first.id, 2), shard_for(second.id, 2)) == (0, 1)
        bot0 = commands.Bot(
            command_prefix="!", intents=INTENTS, shard_id=0, shard_count=2, guild_ready_timeout=0.05
        )
        bot1 = commands.Bot(
            command_prefix="!", intents=INTENTS, shard_id=1, shard_count=2, guild_ready_timeout=0.05
        )
        async with running(sandbox, bot0), running(sandbox, bot1):
            assert [g.id for g in bot0.guilds] == [first.id]
            assert [g.id for g in bot1.guilds] == [second.id]
            sandbox.member_join(second, 2001, "to-shard-one")
            member = await bot1.wait_for("member_join", timeout=5)
            assert member.guild.id == second.id
            sandbox.member_join(first, 2002, "to-shard-zero")
            member = await bot0.wait_for("member_join", timeout=5)
            assert member.guild.id == first.id
            by_shard = {s.shard_id: s for s in sandbox.connected_sessions}
            assert {g for _, _, g in by_shard[0].log if g} == {first.id}
            assert {g for _, _, g in by_shard[1].log if g} == {second.id}


async def test_auto_sharded_bot_asks_gateway_bot():
    async with Sandbox(SandboxConfig(shard_count=2)) as sandbox:
        guilds = [sandbox.create_guild(f"g{i}", shard=i % 2) for i in range(4)]
        bot = QuickAutoShardedBot(command_prefix="!", intents=INTENTS, guild_ready_timeout=0.05)
        async with running(sandbox, bot):
            assert bot.shard_count == 2
            assert sorted(g.id for g in bot.guilds) == sorted(g.id for g in guilds)
            assert all(cached_guild(bot, g.id).shard_id == shard_for(g.id, 2) for g in guilds)
            sandbox.member_join(guilds[3], 3003, "sharded")
            member = await bot.wait_for("member_join", timeout=5)
            assert member.guild.shard_id == 1
        assert any(c.route == "/gateway/bot" for c in sandbox.calls)
        assert sorted(s.shard_id for s in sandbox.all_sessions) == [0, 1]


async def test_events_are_sequenced(sandbox, guild):
    async with running(sandbox, make_bot()) as bot:
        sandbox.member_join(guild, 6001, "a")
        sandbox.member_update(
            guild, 6001, pending=False, flags=discord.MemberFlags(completed_onboarding=True).value
        )
        sandbox.member_leave(guild, 6001)
        await bot.wait_for("member_remove", timeout=5)
        (session,) = sandbox.connected_sessions
        seqs = [seq for seq, _, _ in session.log]
        assert seqs == list(range(1, len(seqs) + 1))
        assert [e for _, e, _ in session.log][-3:] == [
            "GUILD_MEMBER_ADD",
            "GUILD_MEMBER_UPDATE",
            "GUILD_MEMBER_REMOVE",
        ]


async def test_a_large_guild_comes_without_members_then_in_pages_of_a_thousand(sandbox):
    """As Discord sends it to a bot: past IDENTIFY's large_threshold, GUILD_CREATE carries
    only the bot's own member, and op 8 answers in numbered pages of at most 1,000."""
    big = sandbox.create_guild("Big", channels=("general",))
    for i in range(2_400):
        sandbox.member_join(big, None, f"m{i:04d}")
    total = len(big.members)
    url = sandbox.gateway_url + "?v=10&encoding=json&compress=zlib-stream"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        gw = RawGateway(ws)
        assert (await gw.receive())["op"] == 10
        await gw.send(2, {"token": sandbox.token, "intents": int(INTENTS.value),
                          "properties": {}, "large_threshold": 250})
        assert (await gw.receive())["t"] == "READY"
        create = (await gw.receive())["d"]
        assert create["large"] is True and create["member_count"] == total
        assert [m["user"]["id"] for m in create["members"]] == [str(sandbox.bot_user.id)]
        await gw.send(8, {"guild_id": str(big.id), "query": "", "limit": 0, "nonce": "all"})
        chunks = [(await gw.receive())["d"] for _ in range(3)]
        assert [(c["chunk_index"], c["chunk_count"], len(c["members"])) for c in chunks] == \
            [(0, 3, 1000), (1, 3, 1000), (2, 3, total - 2000)]
        assert {c["nonce"] for c in chunks} == {"all"}
        ids = [m["user"]["id"] for c in chunks for m in c["members"]]
        assert len(set(ids)) == total


async def test_discord_py_chunks_a_large_guild_before_it_is_ready(sandbox):
    big = sandbox.create_guild("Big", channels=("general",))
    for i in range(1_200):
        sandbox.member_join(big, None, f"m{i:04d}")
    async with running(sandbox, make_bot()) as client:
        cached = cached_guild(client, big.id)
        assert cached.large and cached.chunked
        assert len(cached.members) == len(big.members) == cached.member_count
