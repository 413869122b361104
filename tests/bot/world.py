"""The real bot (discord.py) in-process against the sandbox, on the test database: the
World a bot test runs in, and how to start and drive it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import text

from bot.container import Container
from bot.discord_bot import LifelineBot, build_bot
from cogs.lifecycle import LifecycleCog
from domain.persistence.database import Database
from sandbox import Guild, Message, Perm, Sandbox, client_overrides
from tests.wiring import ProcessServices

T = TypeVar("T")


def make_container(db: Database, *, interactive: Database | None = None,
                   **settings: Any) -> Container:
    """A container over `db` (and `interactive` for what staff wait on, if given) as a bot
    process builds it, with fast retries and a fast outbox poll;
    `container.services.stores.faults` is the fault seam."""
    services = ProcessServices(db, interactive=interactive,
                               **{"outbox_poll_seconds": 0.05, **settings})
    return Container(services.settings, db, services.services)


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 10.0,
                     what: str = "condition") -> T:
    """Poll an async check (a database read) until it gives a truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class World:
    sandbox: Sandbox
    guild: Guild
    bot: LifelineBot
    container: Container
    owner: int
    staff: int
    staff_role: int
    verified_role: int
    log_channel: int

    async def state(self, user_id: int) -> str | None:
        member = await self.container.transitions.get_member(self.guild.id, user_id)
        return member.state.value if member else None

    async def wait_state(self, user_id: int, state: str, timeout: float = 10.0) -> None:
        async def check() -> bool:
            return await self.state(user_id) == state
        await eventually(check, timeout, f"member {user_id} in state {state}")

    async def command(self, user_id: int, name: str, options: dict[str, Any] | None = None,
                      timeout: float = 10.0) -> Message:
        """Run a slash command; its answer (the first message a person can read: every
        command first defers, "thinking", then answers)."""
        handle = self.sandbox.slash_command(self.guild, user_id, name, options or {})
        return await handle.wait_message(timeout)

    async def ask(self, user_id: int, name: str, options: dict[str, Any] | None = None,
                  timeout: float = 10.0) -> str:
        """Run a slash command; the text a person would read in the (first) answer."""
        handle = self.sandbox.slash_command(self.guild, user_id, name, options or {})
        message = await handle.wait_message(timeout)
        return message_text(message)

    async def count(self, table: str, where: str = "TRUE", **params: Any) -> int:
        async with self.container.db.autocommit() as conn:
            return int((await conn.execute(text(
                f"SELECT count(*) FROM {table} WHERE {where}"), params)).scalar_one())


def message_text(message: Message) -> str:
    return message.text


@contextlib.asynccontextmanager
async def run_bot(sandbox: Sandbox, container: Container, **options: Any
                  ) -> AsyncIterator[LifelineBot]:
    bot = build_bot(container, guild_ready_timeout=0.05, **options)
    with client_overrides(sandbox.base_url):
        task = asyncio.create_task(bot.start(sandbox.token))
        ready = asyncio.create_task(bot.wait_until_ready())
        done, _ = await asyncio.wait({task, ready}, timeout=20,
                                     return_when=asyncio.FIRST_COMPLETED)
        try:
            if task in done:
                task.result()
                raise AssertionError("bot.start() returned before the bot was ready")
            assert ready in done, "bot never became ready"
            await settled(bot)
            yield bot  # type: ignore[misc]
        finally:
            ready.cancel()
            await bot.close()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def settled(bot: LifelineBot, timeout: float = 10.0) -> None:
    """Until the bot's reconcile of every guild is applied: a test starts from a quiet bot."""
    cog = bot.get_cog("LifecycleCog")
    assert isinstance(cog, LifecycleCog)
    async with asyncio.timeout(timeout):
        while not all(g.id in cog.reconciled for g in bot.guilds):
            await asyncio.sleep(0.01)
        await cog.ingestion.wait_idle()


async def start_world(sandbox: Sandbox, db: Database, *, interactive: Database | None = None,
                      **settings: Any
                      ) -> tuple[World, contextlib.AbstractAsyncContextManager[LifelineBot]]:
    guild = sandbox.create_guild("Lifeline Test", channels=("general", "mod-log"),
                                 roles={"Staff": 0, "Verified": 0, "Eligible": 0})
    staff_role = guild.role_named("Staff").id
    staff = sandbox.member_join(guild, None, "staffer", pending=False, roles=[staff_role])
    container = make_container(db, interactive=interactive, **settings)
    runner = run_bot(sandbox, container)
    bot = await runner.__aenter__()
    # What a guild admin does in Server Settings > Integrations: show staff commands to the
    # staff role (Discord hides them from members without Manage Server by default).
    for command in ("member", "dlq", "lifeline"):
        sandbox.grant_command(guild, command, staff_role)
    world = World(sandbox, guild, bot, container, guild.owner_id, staff.user.id, staff_role,
                  guild.role_named("Verified").id, sandbox.channel("mod-log", guild).id)
    return world, runner


async def setup_guild(w: World, mirror_level: str = "dead_letters") -> Any:
    """/lifeline setup by the owner, through Discord."""
    return await w.command(w.owner, "lifeline setup", {
        "log_channel": w.log_channel, "verified_role": w.verified_role,
        "staff_role": w.staff_role, "mirror_level": mirror_level})


__all__ = ["Perm", "World", "eventually", "make_container", "message_text", "run_bot",
           "setup_guild", "start_world"]
