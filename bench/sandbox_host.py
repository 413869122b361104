"""`python -m bench.sandbox_host`: the sandbox Discord in a process of its own, driven by the
benchmark over its stdin / stdout (one JSON object per line each way).

It runs the load generators too, so that the measuring process only measures: the raid
schedule (joins and member updates at planned times), the web app's HTTP API writes and the
staff slash commands. Every event's emission time is taken here with time.time() just after
the sandbox queued its gateway frame; the benchmark compares it with the ledger's created_at
(the same machine clock). The scheduler's lateness (emitted minus planned) and the deepest
queue of frames waiting for a websocket writer say whether the sandbox kept up.

Requests: {"id": n, "cmd": name, ...}; answers: {"id": n, "result": ...} or
{"id": n, "error": "..."}. The first line out is {"ready": {...addresses...}}.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from sandbox import InteractionHandle, MemberFlag, Sandbox, SandboxConfig
from sandbox.models import Guild

JSON = dict[str, Any]
STARTED = int(MemberFlag.STARTED_ONBOARDING)
COMPLETED = int(MemberFlag.COMPLETED_ONBOARDING)
# The raid's member updates after a join: (seconds after the join, flags, pending).
UPDATES = ((0.5, STARTED, True), (1.0, STARTED | COMPLETED, True),
           (1.5, STARTED | COMPLETED, False))
COMMANDS = ("dlq list", "member show")
ANSWER_WAIT = 60.0  # how long a command's readable answer is waited for


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


@dataclass
class RaidState:
    """What one raid run records: per member its join and update emission times."""

    members: list[list[Any]] = field(default_factory=list)  # [guild, user, t0, t1, t2, t3]
    lateness: list[float] = field(default_factory=list)
    webapp: list[list[Any]] = field(default_factory=list)
    commands: list[JSON] = field(default_factory=list)
    queue_max: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class Host:
    def __init__(self, shard_count: int) -> None:
        self.sandbox = Sandbox(SandboxConfig(shard_count=shard_count))
        self.http: aiohttp.ClientSession | None = None
        self.guilds: dict[int, Guild] = {}

    # -- set-up --------------------------------------------------------------------------
    async def setup(self, req: JSON) -> JSON:
        """Guilds with #general, #mod-log and a Verified role, guild i on shard i % shards."""
        made = []
        for i in range(int(req["guilds"])):
            guild = self.sandbox.create_guild(
                f"Raid {i}", shard=i % self.sandbox.config.shard_count,
                channels=("general", "mod-log"), roles={"Verified": 0})
            self.guilds[guild.id] = guild
            made.append({"id": guild.id, "owner_id": guild.owner_id,
                         "log_channel": guild.channel_named("mod-log").id,
                         "verified_role": guild.role_named("Verified").id})
        return {"guilds": made}

    async def members(self, req: JSON) -> JSON:
        """`count` members joined at once (events only reach sessions connected now)."""
        guild = self.guilds[int(req["guild"])]
        flags, pending = int(req.get("flags", 0)), bool(req.get("pending", True))
        started = time.perf_counter()
        ids = [self.sandbox.member_join(guild, None, f"m{i}", pending=pending, flags=flags).id
               for i in range(int(req["count"]))]
        return {"users": ids, "seconds": round(time.perf_counter() - started, 3)}

    async def alter(self, req: JSON) -> JSON:
        """Member updates (`flags` / `pending` for `users`) and leaves (`leave`)."""
        guild = self.guilds[int(req["guild"])]
        flags = req.get("flags")
        pending = req.get("pending")
        for user in req.get("users", []):
            self.sandbox.member_update(guild, int(user), flags=flags, pending=pending)
        for user in req.get("leave", []):
            self.sandbox.member_leave(guild, int(user))
        return {"at": time.time()}

    async def reidentify(self, req: JSON) -> JSON:
        """Op 9 (session not resumable) to every live session, then the changes of `alter`
        (if given), which no session receives: only the bot's reconcile can see them."""
        at = time.time()
        closed = self.sandbox.invalidate_session()
        if req.get("alter"):
            await self.alter(req["alter"])
        return {"at": at, "sessions": closed}

    async def sessions(self, req: JSON) -> JSON:
        """Live sessions, and when each IDENTIFY (every session ever made) was accepted."""
        gateway = self.sandbox.core.gateway
        return {"live": len(gateway.live_sessions()),
                "identified_at": [s.identified_at for s in gateway.history]}

    # -- the raid ------------------------------------------------------------------------
    async def raid(self, req: JSON) -> JSON:
        """Joins of fresh members spread evenly over `seconds`, round-robin over `guilds`,
        each followed by UPDATES; web-app writes and staff commands interleaved."""
        guilds = [self.guilds[int(g)] for g in req["guilds"]]
        joins, seconds = int(req["joins"]), float(req["seconds"])
        state = RaidState()
        plan = self._plan(joins, seconds, req)
        sampler = asyncio.create_task(self._sample_queues(state))
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.1
        wall_start = time.time() + 0.1
        index = 0
        try:
            while index < len(plan):
                now = loop.time() - start
                while index < len(plan) and plan[index][0] <= now:
                    at, kind, n = plan[index]
                    self._fire(kind, n, guilds, state, req)
                    state.lateness.append(loop.time() - start - at)
                    index += 1
                if index < len(plan):
                    await asyncio.sleep(max(0.0, plan[index][0] - (loop.time() - start)))
            if state.tasks:
                await asyncio.wait(state.tasks, timeout=ANSWER_WAIT + 30)
        finally:
            sampler.cancel()
        lateness = state.lateness
        return {"members": state.members, "webapp": state.webapp, "commands": state.commands,
                "started": wall_start, "ended": time.time(),
                "lateness": {"p50": percentile(lateness, 50), "p99": percentile(lateness, 99),
                             "max": max(lateness, default=0.0)},
                "queue_max": state.queue_max}

    @staticmethod
    def _plan(joins: int, seconds: float, req: JSON) -> list[tuple[float, str, int]]:
        plan: list[tuple[float, str, int]] = []
        for i in range(joins):
            at = i * seconds / joins
            plan.append((at, "join", i))
            plan.extend((at + offset, f"update{k}", i)
                        for k, (offset, _, _) in enumerate(UPDATES))
        commands = int((req.get("commands") or {}).get("count", 0))
        plan.extend(((k + 0.5) * seconds / commands, "command", k) for k in range(commands))
        plan.sort()
        return plan

    def _fire(self, kind: str, n: int, guilds: list[Guild], state: RaidState,
              req: JSON) -> None:
        if kind == "join":
            guild = guilds[n % len(guilds)]
            member = self.sandbox.member_join(guild, None, f"raider{n}", pending=True)
            state.members.append([guild.id, member.id, time.time(), None, None, None])
            webapp = req.get("webapp")
            if webapp and n % int(webapp["every"]) == 0:
                self._spawn(state, self._webapp(webapp, guild.id, member.id, state))
        elif kind.startswith("update"):
            k = int(kind.removeprefix("update"))
            guild_id, user = state.members[n][0], state.members[n][1]
            _, flags, pending = UPDATES[k]
            self.sandbox.member_update(self.guilds[guild_id], user, flags=flags,
                                       pending=pending)
            state.members[n][3 + k] = time.time()
        elif kind == "command":
            self._command(n, guilds, state)

    def _spawn(self, state: RaidState, work: Awaitable[None]) -> None:
        async def run() -> None:
            await work

        task = asyncio.create_task(run())
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)

    async def _webapp(self, webapp: JSON, guild: int, user: int, state: RaidState) -> None:
        """The web app: request verification once the member may have been screened, then
        verify; one attempt each, answers recorded as they come."""
        low, high = webapp["window"]
        await asyncio.sleep(random.uniform(low, high))
        assert self.http is not None
        url = random.choice(webapp["api_urls"])
        for operation in ("request_verification", "verify"):
            sent = time.time()
            body = {"operation": operation, "idempotency_key": f"web-{operation}-{user}"}
            try:
                async with self.http.post(
                        f"{url}/api/v1/guilds/{guild}/members/{user}/transitions", json=body,
                        headers={"Authorization": f"Bearer {webapp['token']}"},
                        timeout=aiohttp.ClientTimeout(total=30)) as resp:
                    answer = await resp.json(content_type=None)
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                answer, status = {"error": type(exc).__name__}, 0
            code = answer.get("error") if isinstance(answer, dict) else None
            state.webapp.append([guild, user, operation, status, code, sent, time.time()])

    def _command(self, n: int, guilds: list[Guild], state: RaidState) -> None:
        guild = guilds[n % len(guilds)]
        name = COMMANDS[n % len(COMMANDS)]
        raiders = [m[1] for m in state.members if m[0] == guild.id]
        options = {"user": raiders[-1] if raiders else guild.owner_id} \
            if name == "member show" else {}
        record: JSON = {"name": name, "guild": guild.id, "at": time.time()}
        state.commands.append(record)
        try:
            handle = self.sandbox.slash_command(guild, guild.owner_id, name, options)
        except Exception as exc:  # a command the sandbox refused is reported, not raised
            record["error"] = f"{type(exc).__name__}: {exc}"
            return
        self._spawn(state, self._await_command(handle, record))

    @staticmethod
    async def _await_command(handle: InteractionHandle, record: JSON) -> None:
        """The first callback's time (stamped by the sandbox when it accepted it) and, polled
        every 20 ms for at most ANSWER_WAIT, when a readable message was there."""
        deadline = handle.created_at + ANSWER_WAIT
        while time.monotonic() < deadline:
            if handle.replies and "first_reply_s" not in record:
                record["first_reply_s"] = handle.replies[0].at - handle.created_at
                record["reply_type"] = handle.replies[0].type
            if any(not m.loading for m in handle.messages):
                record["answer_s"] = time.monotonic() - handle.created_at
                break
            await asyncio.sleep(0.02)
        record["expired"] = not handle.replies or \
            handle.replies[0].at - handle.created_at > handle.core.config.interaction_ack_timeout

    async def _sample_queues(self, state: RaidState) -> None:
        while True:
            for conn in list(self.sandbox.core.gateway.connections):
                state.queue_max = max(state.queue_max, conn.queued)
            await asyncio.sleep(0.1)


Command = Callable[[JSON], Awaitable[JSON]]


def write(obj: JSON) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def answer(host_command: Command, req: JSON) -> None:
    try:
        write({"id": req.get("id"), "result": await host_command(req)})
    except Exception as exc:
        logging.exception("command %s failed", req.get("cmd"))
        write({"id": req.get("id"), "error": f"{type(exc).__name__}: {exc}"})


async def serve(shard_count: int) -> None:
    host = Host(shard_count)
    await host.sandbox.start()
    commands: dict[str, Command] = {
        "setup": host.setup, "members": host.members, "alter": host.alter,
        "raid": host.raid, "reidentify": host.reidentify, "sessions": host.sessions}
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    running: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession() as http:
        host.http = http
        sb = host.sandbox
        write({"ready": {"api_url": sb.api_url, "gateway_url": sb.gateway_url,
                         "token": sb.token, "base_url": sb.base_url}})
        while line := await reader.readline():
            req = json.loads(line)
            if req.get("cmd") == "stop":
                break
            task = asyncio.create_task(answer(commands[req["cmd"]], req))
            running.add(task)
            task.add_done_callback(running.discard)
        for task in running:
            task.cancel()
    await sb.stop()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    shard_count = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    asyncio.run(serve(shard_count))


if __name__ == "__main__":
    main()
