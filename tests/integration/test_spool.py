"""The outage spool: fsynced appends, ordered drain, resume after a crash, bounded size."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from domain.commands import TransitionCommand
from domain.errors import DatabaseUnavailable
from domain.lifecycle import Operation, Source
from domain.spool import EventSpool, SpoolFull


def _cmd(i: int) -> TransitionCommand:
    return TransitionCommand(guild_id=1, user_id=1000 + i, operation=Operation.JOIN,
                             source=Source.BOT, idempotency_key=f"k{i}")


async def test_events_drain_in_order_and_the_file_goes_away(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path / "spool")
    await asyncio.gather(*(spool.append(_cmd(i)) for i in range(50)))
    assert spool.has_backlog() and spool.appended == 50
    seen: list[int] = []

    async def apply(cmd: TransitionCommand) -> None:
        seen.append(cmd.user_id)

    assert await spool.drain(apply) == 50
    assert seen == [1000 + i for i in range(50)]
    assert not spool.has_backlog() and not spool.path.exists()


async def test_a_failed_drain_keeps_the_rest_and_resumes_after_a_restart(
        tmp_path: Path) -> None:
    spool = EventSpool(tmp_path / "spool")
    for i in range(10):
        await spool.append(_cmd(i))
    seen: list[int] = []

    async def flaky(cmd: TransitionCommand) -> None:
        if cmd.user_id == 1004:
            raise DatabaseUnavailable("down again")
        seen.append(cmd.user_id)

    with pytest.raises(DatabaseUnavailable):
        await spool.drain(flaky)
    assert seen == [1000, 1001, 1002, 1003]
    restarted = EventSpool(tmp_path / "spool")  # a new process reads the same files
    assert restarted.has_backlog()

    async def apply(cmd: TransitionCommand) -> None:
        seen.append(cmd.user_id)

    assert await restarted.drain(apply) == 6
    assert seen == [1000 + i for i in range(10)]


async def test_a_torn_last_line_is_not_applied(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path / "spool")
    await spool.append(_cmd(1))
    with open(spool.path, "ab") as f:
        f.write(b'{"guild_id": 1, "user_')  # the process died mid-write; never acknowledged
    seen: list[int] = []

    async def apply(cmd: TransitionCommand) -> None:
        seen.append(cmd.user_id)

    assert await spool.drain(apply) == 1 and seen == [1001]


async def test_a_full_spool_refuses_with_a_clear_error(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    spool = EventSpool(tmp_path / "spool", max_bytes=4096)
    with pytest.raises(SpoolFull):
        for i in range(100):
            await spool.append(_cmd(i))
    assert spool.path.stat().st_size <= 4096
    assert "is full" in caplog.text and "SPOOL_MAX_BYTES" in caplog.text
