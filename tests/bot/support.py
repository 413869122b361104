"""Helpers of the /dlq and log-mirror tests: dead letters, more guilds, mirror bursts, and
the real `python -m bot run` as a subprocess against the same sandbox and database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bot.container import Container
from bot.formatting import remediation_line
from domain.commands import TransitionCommand
from domain.deadletters import DeadLetterDraft
from domain.lifecycle import Operation, Source, State
from domain.mirror import remediation_facts
from domain.persistence.database import Database
from domain.persistence.outbox import OutboxStore
from domain.transitions import WriteConflict
from domain.vocabulary import ReasonCode
from sandbox import Guild, InteractionHandle, Sandbox
from tests.bot.world import message_text
from tests.helpers import next_user, path_to

ROOT = Path(__file__).resolve().parents[2]
RECORD = re.compile(r"record (\d{4})\b")


# ---- talking to the bot through the sandbox ---------------------------------------------

async def read(handle: InteractionHandle, timeout: float = 10.0) -> str:
    """The text a person reads in the first answer of an interaction."""
    return message_text(await handle.wait_message(timeout))


async def ask_in(sandbox: Sandbox, guild: Guild, user_id: int, name: str,
                 options: dict[str, Any] | None = None, timeout: float = 10.0) -> str:
    return await read(sandbox.slash_command(guild, user_id, name, options or {}), timeout)


async def setup_other_guild(sandbox: Sandbox, name: str = "Other Guild") -> Guild:
    """A second guild, set up through /lifeline setup by its owner."""
    guild = sandbox.create_guild(name, channels=("general", "mod-log"),
                                 roles={"Staff": 0, "Verified": 0})
    await sandbox.wait_until(lambda: sandbox.commands(guild) or sandbox.commands(),
                             what="commands synced")
    answer = await ask_in(sandbox, guild, guild.owner_id, "lifeline setup", {
        "log_channel": sandbox.channel("mod-log", guild).id,
        "verified_role": guild.role_named("Verified").id,
        "staff_role": guild.role_named("Staff").id})
    assert "set up" in answer, answer
    return guild


# ---- dead letters ----------------------------------------------------------------------

async def drive(container: Container, guild_id: int, user_id: int, target: State) -> None:
    """Walk a member to `target` through TransitionService, like the bot's events would."""
    for op in path_to(target):
        await container.transitions.apply(TransitionCommand(
            guild_id=guild_id, user_id=user_id, operation=op, source=Source.BOT,
            idempotency_key=uuid.uuid4().hex))


async def dead_letter(container: Container, guild_id: int, user_id: int | None = None,
                      op: Operation = Operation.VERIFY, *,
                      reason: ReasonCode = ReasonCode.RETRIES_EXHAUSTED,
                      error: BaseException | None = None,
                      from_state: State | None = State.VERIFICATION_PENDING,
                      to_state: State | None = State.VERIFIED) -> int:
    """A dead letter written by the recorder (with its mirror row), like a lost write: it
    records the member as they are now (so a retry right away is not stale)."""
    cmd = TransitionCommand(guild_id=guild_id, user_id=user_id or next_user(), operation=op,
                            source=Source.API, idempotency_key=uuid.uuid4().hex)
    member = await container.transitions.get_member(guild_id, cmd.user_id)
    draft = DeadLetterDraft(cmd, reason, error or WriteConflict("the member changed meanwhile"),
                            5, from_state, to_state, member.state if member else None,
                            member.version if member else 0)
    return await container.transitions.recorder.record(draft)


async def replayable(container: Container, guild_id: int) -> tuple[int, int]:
    """(user, entry): a member waiting for verification whose `verify` was dead-lettered;
    a retry applies it."""
    user = next_user()
    await drive(container, guild_id, user, State.VERIFICATION_PENDING)
    return user, await dead_letter(container, guild_id, user)


async def hopeless(container: Container, guild_id: int) -> int:
    """An entry whose replay fails again: the member never joined."""
    return await dead_letter(container, guild_id, next_user())


# ---- the log-channel mirror ------------------------------------------------------------

def record_facts(n: int, width: int = 100) -> dict[str, Any]:
    """The facts of a remediation numbered `n` ("record NNNN" in its outcome), whose line is
    padded to `width` characters (when longer than its ~150 without padding), with pings
    in it (the user and actor mentions, @everyone and a role)."""
    entry = {"id": 4_200_000 + n, "user_id": 10**17 + n, "operation": "verify",
             "from_state": "verification_pending", "to_state": "verified"}
    facts = remediation_facts("retry", 10**17, entry,
                              f"record {n:04d}: @everyone <@&{10**17 + 1}> ", None, None)
    facts["outcome"] += "." * max(0, width - len(remediation_line(facts)))
    return facts


async def enqueue_records(db: Database, guild_id: int, numbers: Iterable[int],
                          width: int = 100) -> None:
    """Mirror rows queued in one transaction, the way a remediation action queues one."""
    await OutboxStore(db).enqueue_mirror((guild_id, record_facts(n, width)) for n in numbers)


def channel_messages(sandbox: Sandbox, channel_id: int) -> list[Any]:
    """Messages of a channel, oldest first, also after the channel was deleted."""
    return [m for m in sandbox.core.world.channel_messages(channel_id) if not m.ephemeral]


def channel_lines(sandbox: Sandbox, channel_id: int) -> list[str]:
    """Every line posted in the channel, oldest first: content and embeds alike."""
    return [line for m in channel_messages(sandbox, channel_id) for line in m.lines()]


def record_numbers(sandbox: Sandbox, channel_id: int) -> list[int]:
    return [int(m.group(1)) for line in channel_lines(sandbox, channel_id)
            if (m := RECORD.search(line))]


def duplicates(numbers: list[int]) -> dict[int, int]:
    return {n: c for n, c in Counter(numbers).items() if c > 1}


async def outbox_counts(db: Database) -> dict[str, int]:
    """Outbox rows by delivery status."""
    async with db.autocommit() as conn:
        rows = await conn.execute(text("SELECT status::text AS s, count(*) AS n FROM outbox "
                                       "GROUP BY status"))
        return {r.s: int(r.n) for r in rows}


async def settled(db: Database, total: int) -> dict[str, int] | None:
    """The outbox counts once all `total` rows reached an end state (else None)."""
    counts = await outbox_counts(db)
    done = sum(n for s, n in counts.items()
               if s in ("delivered", "dead_lettered", "failed", "skipped"))
    return counts if done == total and sum(counts.values()) == total else None


# ---- the real entrypoint as a subprocess -----------------------------------------------

@dataclass
class BotProcess:
    """`python -m bot run` against the sandbox; stdout is read as it comes, logs go to a file."""

    sandbox: Sandbox
    database_url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None
    stdout: list[str] = field(default_factory=list)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 30.0) -> BotProcess:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DISCORD_", "DATABASE_", "API_", "OUTBOX_"))}
        env.update({
            "PYTHONPATH": str(ROOT), "DATABASE_URL": self.database_url,
            "DISCORD_TOKEN": self.sandbox.token, "DISCORD_API_BASE": self.sandbox.api_url,
            "DISCORD_GATEWAY_URL": self.sandbox.gateway_url, "OUTBOX_POLL_SECONDS": "0.05",
            "LOG_LEVEL": "INFO", **self.env})
        self._ready = asyncio.Event()
        log = self.log_path.open("ab")
        try:
            # cwd outside the repository: no stray .env is read.
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", cwd=self.log_path.parent, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=log)
        finally:
            log.close()
        self._reader = asyncio.create_task(self._read())
        waiter = asyncio.create_task(self._ready.wait())
        ended = asyncio.create_task(self.process.wait())
        done, _ = await asyncio.wait({waiter, ended}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        ended.cancel()
        if waiter not in done:
            await self.kill()
            raise AssertionError(f"the bot process never became ready:\n{self.logs()}")
        return self

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.stdout.append(line)
            if line.startswith("Lifeline is running as"):
                self._ready.set()

    def logs(self) -> str:
        text_ = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(self.stdout) + "\n" + text_[-6000:]

    async def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, like a crash or an OOM kill."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def stop(self, timeout: float = 15.0) -> int | None:
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                await self.kill()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        return self.process.returncode


__all__ = ["BotProcess", "ask_in", "channel_lines", "channel_messages", "dead_letter",
           "drive", "duplicates", "enqueue_records", "hopeless", "outbox_counts", "read",
           "record_facts", "record_numbers", "replayable", "settled", "setup_other_guild"]
