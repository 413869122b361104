"""The gateway websocket at ``/gateway``.

Speaks what discord.py 2.7.1 expects: HELLO (op 10), an ACK (op 11) for every
heartbeat (op 1), IDENTIFY (op 2) answered by READY then one GUILD_CREATE per
guild of the shard, RESUME (op 6) replaying missed dispatches then RESUMED (or
INVALID_SESSION op 9 ``d=false`` when the session is gone), REQUEST_MEMBERS
(op 8) answered by GUILD_MEMBERS_CHUNK pages of at most 1,000 members. A guild larger
than IDENTIFY's ``large_threshold`` (50 by default, at most 250) comes in GUILD_CREATE
without its member list, as Discord sends it to a bot: the client asks for the members
with op 8. Every dispatch has a growing ``s``.

discord.py connects with ``?v=10&encoding=json&compress=zlib-stream``. The
sandbox then compresses all frames of a connection with one zlib stream,
flushed with Z_SYNC_FLUSH per frame, sent as binary frames (what Discord does).
``zstd-stream`` (asked for when the client has ``zstandard`` installed) is
honoured if the sandbox can import zstandard too; otherwise, like for
``SandboxConfig(compress=False)``, frames go as plain text, which discord.py
accepts whatever it asked for (it only decompresses binary frames).

Close codes: 4001 unknown opcode, 4002 decode error, 4003 not authenticated,
4004 bad token, 4005 already authenticated, 4010 invalid shard, 4013 invalid
intents, 4014 privileged intents the application is not approved for.
A client closing with 1000/1001 ends its session; any other close keeps it
resumable.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from . import payloads
from .config import SandboxConfig
from .ids import shard_for
from .member_requests import large_threshold, member_chunks
from .permissions import EVENT_INTENTS, PRIVILEGED_INTENTS, Intent
from .records import Notifier
from .world import World

_log = logging.getLogger(__name__)

JSON = dict[str, Any]
Compressor = Callable[[str], bytes]
EventData = JSON | Callable[["GatewaySession"], JSON]


def make_compressor(kind: str | None) -> Compressor | None:
    """One compression stream for one connection, or None for plain text frames."""
    if kind == "zlib-stream":
        zobj = zlib.compressobj()

        def zlib_frame(text: str) -> bytes:
            return zobj.compress(text.encode()) + zobj.flush(zlib.Z_SYNC_FLUSH)

        return zlib_frame
    if kind == "zstd-stream":
        try:
            zstandard: Any = importlib.import_module("zstandard")
        except ImportError:
            return None
        cobj = zstandard.ZstdCompressor().compressobj()
        block = zstandard.COMPRESSOBJ_FLUSH_BLOCK

        def zstd_frame(text: str) -> bytes:
            return bytes(cobj.compress(text.encode()) + cobj.flush(block))

        return zstd_frame
    return None


@dataclass
class _Close:
    code: int
    reason: str


class Connection:
    """One websocket; frames are written in order by a single writer task."""

    def __init__(self, ws: web.WebSocketResponse, compress: Compressor | None) -> None:
        self.ws = ws
        self._compress = compress
        self._queue: asyncio.Queue[JSON | _Close] = asyncio.Queue()
        self.session: GatewaySession | None = None
        self.server_close_code: int | None = None
        self.compressed = compress is not None
        self.writer = asyncio.create_task(self._write())

    @property
    def closing(self) -> bool:
        return self.server_close_code is not None or self.ws.closed

    @property
    def queued(self) -> int:
        """Frames waiting for the writer: how far the socket lags behind the dispatches."""
        return self._queue.qsize()

    def send(self, frame: JSON) -> None:
        if not self.closing:
            self._queue.put_nowait(frame)

    def close(self, code: int, reason: str = "") -> None:
        """Close after the frames already queued are written."""
        if self.server_close_code is None:
            self.server_close_code = code
            self._queue.put_nowait(_Close(code, reason))

    async def _write(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if isinstance(item, _Close):
                    await self.ws.close(code=item.code, message=item.reason.encode())
                    return
                text = json.dumps(item, separators=(",", ":"))
                if self._compress is not None:
                    await self.ws.send_bytes(self._compress(text))
                else:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return


@dataclass(eq=False)
class GatewaySession:
    """A bot session: survives its connection so a RESUME can pick it up."""

    session_id: str
    shard_id: int
    shard_count: int
    intents: int
    buffer: deque[JSON]
    seq: int = 0
    connection: Connection | None = None
    resumable: bool = True
    resumes: int = 0
    log: list[tuple[int, str, int | None]] = field(default_factory=list)
    # IDENTIFY's large_threshold: guilds with more members come without their member list.
    large_threshold: int = 50
    # When the IDENTIFY that made the session was accepted (time.time()).
    identified_at: float = field(default_factory=time.time)

    @property
    def connected(self) -> bool:
        return self.connection is not None and not self.connection.closing

    def accepts(self, event: str, *, about_bot: bool = False) -> bool:
        needed = EVENT_INTENTS.get(event, 0)
        if about_bot and event == "GUILD_MEMBER_UPDATE":
            return True  # Discord always tells a bot about its own member.
        return needed == 0 or bool(self.intents & needed)

    def send(self, event: str, data: EventData, guild_id: int | None = None) -> None:
        self.seq += 1
        body = data(self) if callable(data) else data
        frame = payloads.dispatch(event, body, self.seq)
        self.buffer.append(frame)
        self.log.append((self.seq, event, guild_id))
        if self.connection is not None:
            self.connection.send(frame)

    def events(self, name: str | None = None) -> list[tuple[int, str, int | None]]:
        """``(seq, event, guild_id)`` of every dispatch, optionally of one event name."""
        return [entry for entry in self.log if name is None or entry[1] == name]


class Gateway:
    def __init__(self, world: World, config: SandboxConfig, notifier: Notifier) -> None:
        self.world = world
        self.config = config
        self.notifier = notifier
        self.sessions: dict[str, GatewaySession] = {}
        self.history: list[GatewaySession] = []
        self.connections: set[Connection] = set()
        self.url = "ws://127.0.0.1/gateway"

    # -- websocket -------------------------------------------------------
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        kind = request.query.get("compress") if self.config.compress else None
        conn = Connection(ws, make_compressor(kind))
        self.connections.add(conn)
        if request.query.get("encoding", "json") != "json":
            conn.close(4002, "Only encoding=json is supported.")
        conn.send(payloads.hello(self.config.heartbeat_interval_ms))
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    self._on_frame(conn, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    self._on_frame(conn, msg.data.decode(errors="replace"))
        finally:
            self._detach(conn)
        return ws

    def _on_frame(self, conn: Connection, text: str) -> None:
        try:
            frame = json.loads(text)
            op = frame["op"]
        except (ValueError, KeyError, TypeError):
            conn.close(4002, "Error while decoding payload.")
            return
        data = frame.get("d")
        if op == 1:
            conn.send(payloads.heartbeat_ack())
        elif op == 2:
            self._identify(conn, data if isinstance(data, dict) else {})
        elif op == 6:
            self._resume(conn, data if isinstance(data, dict) else {})
        elif op in (3, 4, 8):
            if conn.session is None:
                conn.close(4003, "Not authenticated.")
            elif op == 8 and isinstance(data, dict):
                self._request_members(conn.session, data)
        else:
            conn.close(4001, "Unknown opcode.")

    def _token_ok(self, token: object) -> bool:
        return isinstance(token, str) and token.removeprefix("Bot ") == self.config.token

    def _identify(self, conn: Connection, d: JSON) -> None:
        if conn.session is not None:
            conn.close(4005, "Already authenticated.")
            return
        if not self._token_ok(d.get("token")):
            conn.close(4004, "Authentication failed.")
            return
        intents = d.get("intents")
        if not isinstance(intents, int) or intents < 0:
            conn.close(4013, "Invalid intent(s).")
            return
        if intents & PRIVILEGED_INTENTS & ~self.config.privileged_intents:
            conn.close(4014, "Disallowed intent(s).")
            return
        shard = d.get("shard")
        shard_id, shard_count = (0, 1) if shard is None else (shard[0], shard[1])
        if not (
            isinstance(shard_id, int)
            and isinstance(shard_count, int)
            and 0 <= shard_id < shard_count
        ):
            conn.close(4010, "Invalid shard.")
            return
        session = GatewaySession(
            uuid.uuid4().hex,
            shard_id,
            shard_count,
            intents,
            deque(maxlen=self.config.resume_buffer),
        )
        session.connection = conn
        conn.session = session
        self.sessions[session.session_id] = session
        self.history.append(session)
        guilds = [g for g in self.world.guilds.values() if shard_for(g.id, shard_count) == shard_id]
        ready = payloads.ready(
            bot=self.world.bot_user,
            guilds=guilds,
            session_id=session.session_id,
            resume_gateway_url=self.url,
            shard=None if shard is None else (shard_id, shard_count),
            application_id=self.application_id,
            application_flags=self.config.application_flags(),
        )
        session.send("READY", ready)
        with_members = bool(intents & Intent.GUILD_MEMBERS)
        session.large_threshold = large_threshold(d.get("large_threshold"))
        for guild in guilds:
            body = payloads.guild_create(
                guild, bot_user_id=self.world.bot_user.id, with_members=with_members,
                large_threshold=session.large_threshold,
            )
            session.send("GUILD_CREATE", body, guild.id)
        self.notifier.notify()

    @property
    def application_id(self) -> int:
        return self.config.application_id or self.world.bot_user.id

    def _resume(self, conn: Connection, d: JSON) -> None:
        if not self._token_ok(d.get("token")):
            conn.close(4004, "Authentication failed.")
            return
        session = self.sessions.get(str(d.get("session_id")))
        seq = d.get("seq") or 0
        oldest = session.buffer[0]["s"] if session is not None and session.buffer else 1
        if session is None or not session.resumable or not isinstance(seq, int) or seq < oldest - 1:
            conn.send(payloads.invalid_session(False))
            return
        if session.connection is not None and session.connection is not conn:
            session.connection.close(4000, "Session resumed elsewhere.")
        session.connection = conn
        conn.session = session
        session.resumes += 1
        for frame in session.buffer:
            if frame["s"] > seq:
                conn.send(frame)
        session.send("RESUMED", {"_trace": ['["sandbox",{}]']})
        self.notifier.notify()

    def _request_members(self, session: GatewaySession, d: JSON) -> None:
        raw = d.get("guild_id")
        guild_ids = raw if isinstance(raw, list) else [raw]
        for raw_id in guild_ids:
            if not str(raw_id).isdigit():
                continue
            guild = self.world.guilds.get(int(str(raw_id)))
            if guild is None:
                continue
            for chunk in member_chunks(guild, d):
                session.send("GUILD_MEMBERS_CHUNK", chunk, guild.id)

    def _detach(self, conn: Connection) -> None:
        self.connections.discard(conn)
        conn.writer.cancel()
        session = conn.session
        if session is not None and session.connection is conn:
            session.connection = None
            client_code = conn.ws.close_code if conn.server_close_code is None else None
            if client_code in (1000, 1001):
                session.resumable = False
                self.sessions.pop(session.session_id, None)
        self.notifier.notify()

    # -- dispatching -----------------------------------------------------
    def dispatch(
        self, event: str, data: EventData, *, guild_id: int | None = None, about_bot: bool = False
    ) -> int:
        """Send an event to every session of the guild's shard (DMs: shard 0); returns how many."""
        sent = 0
        for session in list(self.sessions.values()):
            shard = 0 if guild_id is None else shard_for(guild_id, session.shard_count)
            if shard != session.shard_id or not session.accepts(event, about_bot=about_bot):
                continue
            session.send(event, data, guild_id)
            sent += 1
        self.notifier.notify()
        return sent

    def sessions_for_guild(self, guild_id: int) -> list[GatewaySession]:
        return [
            s for s in self.sessions.values() if shard_for(guild_id, s.shard_count) == s.shard_id
        ]

    def live_sessions(self, shard_id: int | None = None) -> list[GatewaySession]:
        return [s for s in self.sessions.values() if s.connected and shard_id in (None, s.shard_id)]

    def disconnect(
        self, shard_id: int | None = None, *, code: int = 4000, invalidate: bool = False
    ) -> int:
        """Close live connections now; the client reconnects (and resumes unless ``invalidate``)."""
        closed = 0
        for session in self.live_sessions(shard_id):
            if invalidate:
                session.resumable = False
                self.sessions.pop(session.session_id, None)
            assert session.connection is not None
            session.connection.close(code, "Sandbox disconnect.")
            closed += 1
        return closed

    def request_reconnect(self, shard_id: int | None = None) -> int:
        """Send op 7 RECONNECT: the client closes and resumes."""
        sessions = self.live_sessions(shard_id)
        for session in sessions:
            assert session.connection is not None
            session.connection.send(payloads.reconnect())
        return len(sessions)

    def invalidate(self, shard_id: int | None = None) -> int:
        """Send op 9 with ``d=false``: the client drops its session and identifies again."""
        sessions = self.live_sessions(shard_id)
        for session in sessions:
            session.resumable = False
            self.sessions.pop(session.session_id, None)
            assert session.connection is not None
            session.connection.send(payloads.invalid_session(False))
        return len(sessions)

    async def close(self) -> None:
        for conn in list(self.connections):
            conn.close(1001, "Sandbox shutting down.")
        writers = [c.writer for c in self.connections]
        if writers:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait(writers, timeout=2.0)
