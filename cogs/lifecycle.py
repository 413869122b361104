"""Gateway member events in, logged and applied by the ingest pipeline (domain/ingest/).

Each handler turns its event into a MemberEvent and submits it: the event is on disk in
the ingest log before any database work, and the handler never waits on the database.
Membership events (join, leave, ban, unban) are applied as operations keyed by the event;
a member update only says "this member changed" (when it changed something the lifecycle
reads): the worker syncs the member to what Discord shows when it gets there, reading
discord.py's cache through `member_flags` (this cog is the pipeline's MemberView). Reconcile
at connect queues a sync of every member whose stored state differs from what Discord shows,
and the leave of every stored member who is gone, through the same workers and batches;
then it repairs the verified role where Discord shows it drifted (cogs/roles.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

import discord
from discord.ext import commands

from cogs.roles import repair_roles
from domain.errors import DomainError
from domain.ingest.events import REASONS, EventKind, MemberEvent
from domain.ingest.log import IngestLog
from domain.ingest.pipeline import Ingestion
from domain.lifecycle import EXIT_STATES
from domain.member_sync import MemberFlags, catch_up
from domain.records import GuildConfig
from domain.services import Services

log = logging.getLogger(__name__)


def member_flags(member: discord.Member, eligibility_role: int | None) -> MemberFlags:
    """What the lifecycle reads of a member (domain/member_sync.py)."""
    return MemberFlags(
        started_onboarding=member.flags.started_onboarding,
        completed_onboarding=member.flags.completed_onboarding,
        pending=member.pending,
        holds_eligibility_role=eligibility_role is not None
        and member.get_role(eligibility_role) is not None)


def lifecycle_relevant(before: discord.Member, after: discord.Member) -> bool:
    """Whether an update changed anything the lifecycle reads: the onboarding flags,
    membership screening, or the roles (the eligibility role is one of them). Every rule
    of domain/member_sync.py needs one of these to change; anything else is ignored
    before any database work."""
    return (before.flags.started_onboarding != after.flags.started_onboarding
            or before.flags.completed_onboarding != after.flags.completed_onboarding
            or before.pending != after.pending
            or {r.id for r in before.roles} != {r.id for r in after.roles})


def joined_at_ms(user: Any) -> int | None:
    joined_at = user.joined_at if isinstance(user, discord.Member) else None
    return None if joined_at is None else int(joined_at.timestamp() * 1000)


# The ledger reasons of a reconcile's syncs and leaves (domain/ingest/events.py REASONS).
RECONCILE_REASONS = [REASONS[EventKind.SYNC], "not in the guild after reconnect"]
RECONCILE_REPORT_WAIT = 600


class LifecycleCog(commands.Cog):
    def __init__(self, services: Services, ingest_log: IngestLog, client: discord.Client, *,
                 workers: int = 4, batch_size: int = 256) -> None:
        self.client = client
        self.transitions = services.transitions
        self.guilds = services.guilds
        self.role_drift = services.role_drift
        self.ingestion = Ingestion(ingest_log, services.batches, self, workers=workers,
                                   batch_size=batch_size, reconcile=self.reconcile_by_id)
        self.reconciled: set[int] = set()  # guilds whose reconcile was queued
        # What each guild's last reconcile wrote, once its queued work was applied:
        # (transitions, members); logged too.
        self.reconcile_written: dict[int, tuple[int, int]] = {}
        self._reports: set[asyncio.Task[None]] = set()

    async def cog_load(self) -> None:
        await self.ingestion.start()

    async def cog_unload(self) -> None:
        for task in self._reports:
            task.cancel()
        await self.ingestion.stop()

    # ---- the pipeline's view of Discord ---------------------------------------------------

    def member_flags(self, guild_id: int, user_id: int,
                     eligibility_role_id: int | None) -> MemberFlags | None:
        guild = self.client.get_guild(guild_id)
        member = guild.get_member(user_id) if guild is not None else None
        if member is None or member.bot:
            return None
        return member_flags(member, eligibility_role_id)

    # ---- events in ----------------------------------------------------------------------

    async def _membership(self, kind: EventKind, guild_id: int, user: Any) -> None:
        if user.bot:
            return
        await self.ingestion.submit(MemberEvent.membership(
            kind, guild_id, user.id, time.time(),
            None if kind is EventKind.UNBAN else joined_at_ms(user)))

    @commands.Cog.listener()
    async def on_member_join(self, member: discord.Member) -> None:
        await self._membership(EventKind.JOIN, member.guild.id, member)

    @commands.Cog.listener()
    async def on_raw_member_remove(self, payload: discord.RawMemberRemoveEvent) -> None:
        await self._membership(EventKind.LEAVE, payload.guild_id, payload.user)

    @commands.Cog.listener()
    async def on_member_ban(self, guild: discord.Guild, user: discord.User | discord.Member
                            ) -> None:
        await self._membership(EventKind.BAN, guild.id, user)

    @commands.Cog.listener()
    async def on_member_unban(self, guild: discord.Guild, user: discord.User) -> None:
        await self._membership(EventKind.UNBAN, guild.id, user)

    @commands.Cog.listener()
    async def on_member_update(self, before: discord.Member, after: discord.Member) -> None:
        """Level-triggered: "this member changed". A nickname, an avatar, a timeout: no
        event at all."""
        if after.bot or not lifecycle_relevant(before, after):
            return
        await self.ingestion.submit(MemberEvent(EventKind.UPDATE, after.guild.id, after.id,
                                                time.time()))

    # ---- reconciliation: what happened while the bot was not connected -----------------

    @commands.Cog.listener()
    async def on_guild_available(self, guild: discord.Guild) -> None:
        """At start-up and after a reconnect (a resumed session has nothing to catch up)."""
        try:
            await self.reconcile(guild)
        except Exception:
            log.exception("reconciling guild %s failed; live events still apply", guild.id)

    async def reconcile_by_id(self, guild_id: int) -> int:
        guild = self.client.get_guild(guild_id)
        return 0 if guild is None else await self.reconcile(guild)

    async def reconcile(self, guild: discord.Guild) -> int:
        """Queue a sync of every member whose stored state differs from what Discord shows,
        and the leave of every stored member Discord does not show; answers how many
        members were queued. Two statements, whatever the guild's size: the rest is the
        workers' batches (a second reconcile finds nothing to do)."""
        started = time.perf_counter()
        since = datetime.now(UTC)
        stored = await self.transitions.member_states(guild.id)
        config = await self.guilds.get(guild.id)
        eligibility_role = config.eligibility_role_id if config else None
        configured = eligibility_role is not None
        to_sync: list[int] = []
        present: set[int] = set()
        for n, member in enumerate(guild.members):
            if n % 2000 == 1999:
                await asyncio.sleep(0)  # a big guild: let the gateway and staff commands in
            if member.bot:
                continue
            present.add(member.id)
            state = stored.get(member.id, (None, 0))[0]
            if catch_up(state, member_flags(member, eligibility_role),
                        eligibility_role_configured=configured):
                to_sync.append(member.id)
        self.ingestion.sync_members(guild.id, to_sync, "caught up after reconnect")
        gone = 0
        at = time.time()
        for user_id, (state, version) in stored.items():
            if user_id in present or state in EXIT_STATES:
                continue
            gone += 1
            self.ingestion.queue_event(MemberEvent(
                EventKind.LEAVE, guild.id, user_id, at,
                key=f"reconcile:leave:{guild.id}:{user_id}:v{version}",
                reason=RECONCILE_REASONS[1]))
        roles = await self._repair_roles(guild, config)
        self.reconciled.add(guild.id)
        log.info("reconciled guild %s: %d members checked, queued %d to sync and %d gone "
                 "(written: logged once applied), verified role: %s, in %.2fs", guild.id,
                 len(present), len(to_sync), gone, roles, time.perf_counter() - started)
        if to_sync or gone:
            task = asyncio.create_task(self._report_written(guild.id, since))
            self._reports.add(task)
            task.add_done_callback(self._reports.discard)
        return len(to_sync) + gone

    async def _report_written(self, guild_id: int, since: datetime) -> None:
        """Once the reconcile's queued work is applied: what it wrote (its ledger rows),
        not what it queued (a queued sync may find nothing to change)."""
        try:
            async with asyncio.timeout(RECONCILE_REPORT_WAIT):
                await self.ingestion.wait_idle()
            written = await self.transitions.written_since(guild_id, since, RECONCILE_REASONS)
        except TimeoutError:
            log.info("reconcile of guild %s: still being applied after %ds", guild_id,
                     RECONCILE_REPORT_WAIT)
            return
        except Exception:
            log.warning("reconcile of guild %s: could not count what it wrote", guild_id,
                        exc_info=True)
            return
        self.reconcile_written[guild_id] = written
        log.info("reconcile of guild %s wrote %d transitions for %d members", guild_id,
                 *written)

    async def _repair_roles(self, guild: discord.Guild, config: GuildConfig | None) -> str:
        """The verified role's drift, repaired while the bot was away; what was done, for
        the reconcile's log line. A failure leaves the rest of the reconcile standing
        (`/lifeline repair` runs it again)."""
        if config is None or config.verified_role_id is None:
            return "not set up"
        try:
            return (await repair_roles(guild, config, self.role_drift)).summary()
        except DomainError as exc:
            return f"not repaired ({exc})"
        except Exception:
            log.exception("role repair of guild %s failed; /lifeline repair runs it again",
                          guild.id)
            return "repair failed"
