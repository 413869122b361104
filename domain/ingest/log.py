"""The ingest log: every gateway member event is appended here, and on disk, before any
database work.

Appends are group-committed: the events that arrive within a couple of milliseconds are
written and fsynced together, and each `append` returns once its event is durable. The log
is a series of segment files named by the global offset they start at; `commit(position)`
records (fsynced) that everything before `position` is applied, and removes segments
wholly before it. A restart replays from the committed position: what reached the log is
never lost (replays are harmless: a membership event's idempotency key applies it once, and
a member update only asks for a sync). The log is bounded: when the events waiting in it
would exceed `max_bytes` (SPOOL_MAX_BYTES), `append` raises LogFull and nothing is written.

One process owns a log directory (an exclusive lock, taken at open): two processes
appending to one file would corrupt it.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from domain.ingest.events import MemberEvent

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".log"


class LogFull(Exception):
    """The log holds `max_bytes` of waiting events: this one was not written."""


class LogInUse(Exception):
    """Another process holds this log directory."""


class LogClosed(OSError):
    """The log is closing (the bot is shutting down): the event was not written."""


@dataclass(frozen=True, slots=True)
class Logged:
    position: int  # the global offset where the event's line starts
    end: int  # where it ends (the position of the next line)
    event: MemberEvent


@dataclass
class _Batch:
    lines: list[bytes] = field(default_factory=list)
    events: list[MemberEvent] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None


class IngestLog:
    def __init__(self, directory: Path, max_bytes: int, *, batch_seconds: float = 0.002,
                 segment_bytes: int = 4 * 1024 * 1024) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.batch_seconds = batch_seconds
        self.segment_bytes = segment_bytes
        self.on_durable: Callable[[list[Logged]], None] = lambda logged: None
        self._segments: list[int] = []  # start offsets, ascending
        self._end = 0  # the global offset after the last durable line
        self._pending_bytes = 0
        self._committed = 0
        self._batch: _Batch | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._commit_lock = asyncio.Lock()
        self._closed = False
        self._broken: str | None = None  # why appends are refused (a failed write's undo)
        self.appended = 0
        self.unreadable = 0  # lines skipped at open (the start-up reconcile covers them)

    # ---- opening: the lock, and what a restart must replay --------------------------------

    def open(self) -> list[Logged]:
        """Take the directory, and answer the events after the committed position (a torn
        last line, from a crash mid-write, was never acknowledged and is cut off)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / "lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise LogInUse(f"the ingest log {self.directory} is in use by another process; "
                           "give each bot process its own DATA_DIR (or shards)") from None
        self._committed = self._read_committed()
        self._segments = sorted(int(p.stem) for p in self.directory.glob(f"*{SEGMENT_SUFFIX}")
                                if p.stem.isdigit())
        replay: list[Logged] = []
        self._end = self._committed
        for start in self._segments:
            data = self._segment(start).read_bytes()
            cut = data.rfind(b"\n") + 1
            if cut < len(data):
                log.warning("ingest log %s: cut a torn last line (%d bytes) that was never "
                            "acknowledged", self._segment(start), len(data) - cut)
                os.truncate(self._segment(start), cut)
                data = data[:cut]
            self._end = max(self._end, start + len(data))
            replay.extend(self._parse(start, data))
        return replay

    def _parse(self, start: int, data: bytes) -> list[Logged]:
        events: list[Logged] = []
        position = start
        for raw in data.splitlines(keepends=True):
            end = position + len(raw)
            if position >= self._committed:
                try:
                    events.append(Logged(position, end, MemberEvent.from_line(raw)))
                except (ValueError, KeyError, TypeError) as exc:
                    self.unreadable += 1
                    log.error("ingest log: unreadable line at %d skipped (the reconcile at "
                              "connect brings its member back to what Discord shows): %s",
                              position, exc)
            position = end
        return events

    async def aclose(self) -> None:
        """Refuse new appends, let the write in progress finish, then let go of the files
        (and of the directory's lock: only then may another process open it)."""
        self._closed = True
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        self.close()

    def close(self) -> None:
        self._closed = True
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ---- appending ----------------------------------------------------------------------

    @property
    def end(self) -> int:
        """The position after the last durable event."""
        return self._end

    @property
    def committed(self) -> int:
        return self._committed

    def waiting_bytes(self) -> int:
        """Bytes of events logged (or being logged) and not yet applied."""
        return self._end + self._pending_bytes - self._committed

    async def append(self, event: MemberEvent) -> None:
        """Log one event; returns once it is on disk. Raises LogFull (nothing written), or
        the OSError of a failed write."""
        if self._closed:
            raise LogClosed("the ingest log is closed (shutting down)")
        if self._broken is not None:
            raise OSError(f"the ingest log is unusable: {self._broken}")
        line = event.to_line()
        if self.waiting_bytes() + len(line) > self.max_bytes:
            raise LogFull(f"the ingest log holds {self.waiting_bytes()} bytes of waiting "
                          f"events (SPOOL_MAX_BYTES={self.max_bytes})")
        batch = self._batch
        if batch is None:
            batch = self._batch = _Batch()
        batch.lines.append(line)
        batch.events.append(event)
        self._pending_bytes += len(line)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_batches(), name="ingest-log-flush")
        await batch.done.wait()
        if batch.error is not None:
            raise batch.error

    async def _flush_batches(self) -> None:
        while self._batch is not None:
            await asyncio.sleep(self.batch_seconds)  # gather the batch: one fsync for it all
            batch, self._batch = self._batch, None
            size = sum(map(len, batch.lines))
            try:
                await asyncio.to_thread(self._write, b"".join(batch.lines))
            except OSError as exc:
                log.error("ingest log: writing %d events failed: %s", len(batch.lines), exc)
                batch.error = exc
                self._pending_bytes -= size
                batch.done.set()
                continue
            logged = []
            position = self._end
            for line, event in zip(batch.lines, batch.events, strict=True):
                logged.append(Logged(position, position + len(line), event))
                position += len(line)
            self._end = position
            self._pending_bytes -= size
            self.appended += len(logged)
            self.on_durable(logged)
            batch.done.set()

    def _write(self, data: bytes) -> None:
        if self._fd is None or (self._segments and
                                self._end - self._segments[-1] >= self.segment_bytes):
            self._roll()
        fd = self._fd
        assert fd is not None
        # What is on disk must stay exactly the acknowledged lines: a write that fails half
        # way is undone, or the log refuses further appends (a line appended after a torn
        # fragment would be unreadable, and every position after it wrong).
        size = self._end - self._segments[-1]
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fdatasync(fd)
        except OSError:
            try:
                os.ftruncate(fd, size)
                os.fdatasync(fd)
            except OSError as undo:
                self._broken = f"a failed write could not be undone ({undo})"
            raise

    def _roll(self) -> None:
        """Write to a new segment starting at the current end (or reopen the last one)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        new = not self._segments or self._end - self._segments[-1] >= self.segment_bytes
        start = self._end if new else self._segments[-1]
        self._fd = os.open(self._segment(start), os.O_CREAT | os.O_WRONLY | os.O_APPEND,
                           0o600)
        if new:
            self._segments.append(start)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new file's name is durable too
        finally:
            os.close(dir_fd)

    def _segment(self, start: int) -> Path:
        return self.directory / f"{start:020d}{SEGMENT_SUFFIX}"

    # ---- committing: what is applied ------------------------------------------------------

    def _read_committed(self) -> int:
        try:
            return int((self.directory / "committed").read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    async def commit(self, position: int) -> None:
        """Everything before `position` is applied: record it, and drop whole segments
        before it."""
        async with self._commit_lock:
            if position <= self._committed:
                return
            # A segment can go once the next one starts at or before the position.
            drop: list[int] = []
            while len(self._segments) > 1 and self._segments[1] <= position:
                drop.append(self._segments.pop(0))
            await asyncio.to_thread(self._write_committed, position, drop)
            self._committed = position

    def _write_committed(self, position: int, drop: list[int]) -> None:
        tmp = self.directory / "committed.tmp"
        with open(tmp, "w") as f:
            f.write(str(position))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / "committed")
        for start in drop:
            self._segment(start).unlink(missing_ok=True)


def waiting_in(directory: Path) -> int:
    """Bytes logged and not committed in a log directory this process does not own (a
    directory left by another shard set): for a warning at start-up."""
    try:
        committed = int((directory / "committed").read_text() or 0)
    except (FileNotFoundError, ValueError):
        committed = 0
    end = 0
    for path in directory.glob(f"*{SEGMENT_SUFFIX}"):
        if path.stem.isdigit():
            end = max(end, int(path.stem) + path.stat().st_size)
    return max(0, end - committed)
