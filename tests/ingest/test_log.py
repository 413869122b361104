"""The ingest log on its own: durable before acknowledged, replayed after a crash, bounded,
one owner."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
from pathlib import Path

import pytest

from domain.ingest.events import EventKind, MemberEvent
from domain.ingest.log import IngestLog, LogFull, Logged, LogInUse

GUILD = 1_000_000_000_000_001


def join(user: int) -> MemberEvent:
    return MemberEvent.membership(EventKind.JOIN, GUILD, user, 1.0, joined_at_ms=5)


def opened(directory: Path, max_bytes: int = 1 << 20, **options: object) -> tuple[
        IngestLog, list[Logged], list[Logged]]:
    log = IngestLog(directory, max_bytes, **options)  # type: ignore[arg-type]
    durable: list[Logged] = []
    log.on_durable = durable.extend
    return log, log.open(), durable


async def test_appends_are_group_committed_and_acknowledged_once_durable(
        tmp_path: Path) -> None:
    log, replay, durable = opened(tmp_path)
    assert replay == []
    flushes: list[int] = []
    log.on_durable = lambda logged: (flushes.append(len(logged)), durable.extend(logged))
    await asyncio.gather(*(log.append(join(u)) for u in range(1, 101)))
    # One flush (one write, one fsync) for all hundred: appended within the same ms.
    assert flushes == [100] and log.appended == 100
    assert [d.event.user_id for d in durable] == list(range(1, 101))  # in order
    on_disk = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("*.log")))
    assert on_disk.count(b"\n") == 100
    assert durable[-1].end == log.end == len(on_disk)
    log.close()


async def test_a_restart_replays_what_was_not_committed_and_cuts_a_torn_line(
        tmp_path: Path) -> None:
    log, _, durable = opened(tmp_path)
    for user in range(1, 6):
        await log.append(join(user))
    await log.commit(durable[1].end)  # the first two are applied
    log.close()  # a crash: nothing else recorded
    segment = sorted(tmp_path.glob("*.log"))[-1]
    with open(segment, "ab") as f:
        f.write(b'{"k":"join","g":1')  # a write torn by the crash: never acknowledged

    again, replay, _ = opened(tmp_path)
    assert [r.event.user_id for r in replay] == [3, 4, 5]
    assert replay[0].event == durable[2].event  # keys and all
    assert not segment.read_bytes().endswith(b'"g":1')
    await again.append(join(6))  # appends continue after the cut
    again.close()
    third, replay, _ = opened(tmp_path)
    assert [r.event.user_id for r in replay] == [3, 4, 5, 6]
    third.close()


async def test_a_full_log_refuses_and_writes_nothing_then_has_room_once_applied(
        tmp_path: Path) -> None:
    size = len(join(1).to_line())
    log, _, durable = opened(tmp_path, max_bytes=size * 3)
    for user in (1, 2, 3):
        await log.append(join(user))
    with pytest.raises(LogFull, match="SPOOL_MAX_BYTES"):
        await log.append(join(4))
    assert log.appended == 3
    await log.commit(durable[0].end)
    await log.append(join(5))
    assert [d.event.user_id for d in durable] == [1, 2, 3, 5]
    log.close()


async def test_segments_roll_and_applied_ones_are_removed(tmp_path: Path) -> None:
    log, _, durable = opened(tmp_path, segment_bytes=200)
    for user in range(1, 21):
        await log.append(join(user))  # one at a time: one segment check per flush
    segments = sorted(tmp_path.glob("*.log"))
    assert len(segments) > 3
    await log.commit(durable[-1].end)
    left = sorted(tmp_path.glob("*.log"))
    assert left == segments[-1:]  # only the segment being written remains
    log.close()
    again, replay, _ = opened(tmp_path, segment_bytes=200)
    assert replay == []
    again.close()


async def test_one_process_per_log_directory(tmp_path: Path) -> None:
    log, _, _ = opened(tmp_path)
    pid = os.fork()
    if pid == 0:  # another process opening the same directory is refused
        try:
            IngestLog(tmp_path, 1 << 20).open()
        except LogInUse:
            os._exit(0)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    log.close()
    second, _, _ = opened(tmp_path)  # free again once closed
    second.close()


def _append_until_the_disk_refuses(directory: Path) -> None:
    """In a child process: the file size limit stops a write half way (a partial write,
    then EFBIG), as a full disk would. The log undoes the fragment; after the limit is
    lifted, appends go on, and only the acknowledged events are in the log."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill

    async def scenario() -> int:
        log, _, _ = opened(directory)
        await log.append(join(1))
        limit = log.end + len(join(2).to_line()) // 2  # the next line fits half
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        try:
            await log.append(join(2))
        except OSError:
            pass
        else:
            return 3  # the limit did not bite
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        await log.append(join(3))
        log.close()
        return 0

    os._exit(asyncio.run(scenario()))


async def test_a_write_that_fails_half_way_is_undone(tmp_path: Path) -> None:
    pid = os.fork()
    if pid == 0:
        _append_until_the_disk_refuses(tmp_path)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    log, replay, _ = opened(tmp_path)
    assert [r.event.user_id for r in replay] == [1, 3]  # 2 was refused, 3 is whole
    assert log.unreadable == 0
    log.close()
