"""A local append-only spool for gateway events the database could not take.

While PostgreSQL is unreachable the bot stays connected to Discord; each event it cannot
write is appended here as its full command (JSON, one per line), fsynced per batch. When
the database answers again the events are applied in order through TransitionService
(idempotency keys make a second application impossible) or dead-lettered if they no longer
apply. A read offset, fsynced after each applied event, lets a restart resume where a crash
stopped. The file is bounded: when full, an event is refused with a clear error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from domain.commands import TransitionCommand

log = logging.getLogger(__name__)


class SpoolFull(Exception):
    pass


class EventSpool:
    def __init__(self, directory: Path, max_bytes: int = 64 * 1024 * 1024,
                 batch_seconds: float = 0.02) -> None:
        self.directory = directory
        self.path = directory / "events.jsonl"
        self.offset_path = directory / "events.offset"
        self.max_bytes = max_bytes
        self.batch_seconds = batch_seconds
        self._pending: list[bytes] = []
        self._flushed = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._file_lock = asyncio.Lock()  # appends vs. removing a drained file
        self._drain_lock = asyncio.Lock()  # one drain at a time
        self.appended = 0
        self.applied = 0
        self.full_warned = False

    # ---- writing ------------------------------------------------------------------------

    def has_backlog(self) -> bool:
        return bool(self._pending) or self._unread_bytes() > 0

    def _unread_bytes(self) -> int:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return 0
        return size - self._read_offset()

    async def append(self, cmd: TransitionCommand) -> None:
        """Queue one event; returns once it is on disk (fsynced with its batch)."""
        line = (json.dumps(cmd.to_payload(), separators=(",", ":")) + "\n").encode()
        size = self.path.stat().st_size if self.path.exists() else 0
        if size + sum(map(len, self._pending)) + len(line) > self.max_bytes:
            if not self.full_warned:
                log.error("the event spool %s is full (%d bytes, SPOOL_MAX_BYTES); events "
                          "are refused until the database is back", self.path, self.max_bytes)
                self.full_warned = True
            raise SpoolFull(f"event spool full ({self.max_bytes} bytes)")
        self._pending.append(line)
        done = self._flushed
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())
        await done.wait()

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.batch_seconds)  # gather the batch: one fsync for all of it
        batch, self._pending = self._pending, []
        done, self._flushed = self._flushed, asyncio.Event()
        async with self._file_lock:  # never while a drain removes the file
            await asyncio.to_thread(self._write, batch)
        self.appended += len(batch)
        done.set()

    def _write(self, batch: list[bytes]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as f:
            f.write(b"".join(batch))
            f.flush()
            os.fsync(f.fileno())

    # ---- draining -----------------------------------------------------------------------

    def _read_offset(self) -> int:
        try:
            return int(self.offset_path.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _write_offset(self, offset: int) -> None:
        tmp = self.offset_path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(str(offset))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.offset_path)

    def _read_from(self, offset: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read()

    async def drain(self, apply: Callable[[TransitionCommand], Awaitable[None]]) -> int:
        """Apply every spooled event in order; raises (and keeps the rest) if one fails."""
        async with self._drain_lock:
            if not self.path.exists():
                return 0
            count = 0
            offset = self._read_offset()
            tail = await asyncio.to_thread(self._read_from, offset)
            for raw in tail.splitlines(keepends=True):
                if not raw.endswith(b"\n"):
                    break  # a torn last line from a crash mid-write: it was never acked
                cmd = TransitionCommand.from_payload(json.loads(raw))
                await apply(cmd)
                offset += len(raw)
                await asyncio.to_thread(self._write_offset, offset)
                count += 1
            self.applied += count
            async with self._file_lock:
                if not self._pending and offset >= self.path.stat().st_size:
                    self.path.unlink()
                    self.offset_path.unlink(missing_ok=True)
                    self.full_warned = False
            return count
