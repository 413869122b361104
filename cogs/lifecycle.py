"""Gateway events become lifecycle operations, as the trigger column of lifecycle.md says.

Membership events (join, leave, ban, unban) are applied as operations keyed by the event,
spooled while the database is unreachable. Member updates are level-triggered: each one
syncs the member to what Discord shows now (domain/sync.py), and so does reconcile for
every member at connect. Handlers never let an exception escape: a write that fails ends
as a dead-letter record (the service writes it), a sync that cannot reach the database is
done again once it answers, and an event that no longer applies is kept as a
`not_applicable` dead letter unless it is a known echo (the leave that follows a kick or
ban, a join for a member already present).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from typing import Any

import discord
from discord.ext import commands

from domain.commands import TransitionCommand
from domain.errors import DatabaseUnavailable, DomainError, TransitionDeadLettered
from domain.lifecycle import EXIT_STATES, Operation, Source, State, TransitionNotAllowed, is_echo
from domain.member_sync import MemberFlags, catch_up
from domain.persistence.database import is_unavailable
from domain.services import Services
from domain.spool import EventSpool, SpoolFull

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


def event_key(op: Operation, guild_id: int, user_id: int,
              joined_at: Any | None) -> str:
    """One key per operation per membership stint: a replayed gateway event applies once."""
    if joined_at is None:
        return f"gw:{op.value}:{uuid.uuid4().hex}"
    return f"gw:{op.value}:{guild_id}:{user_id}:{int(joined_at.timestamp() * 1000)}"


class LifecycleCog(commands.Cog):
    def __init__(self, services: Services, spool: EventSpool,
                 client: discord.Client | None = None) -> None:
        self.client = client  # to look members up again as Discord shows them now
        self.transitions = services.transitions
        self.guilds = services.guilds
        self.member_sync = services.sync
        self.spool = spool
        # Members with a sync waiting for their lock: a later update of the same member
        # adds nothing (the waiting sync reads the member as Discord shows it then).
        self._sync_queued: dict[tuple[int, int], object] = {}
        # Members whose sync could not reach the database: synced again once it answers
        # (from discord.py's cache, as Discord shows them then). A restart loses this set,
        # and the reconcile at connect repairs every member instead.
        self._resync: dict[tuple[int, int], str] = {}
        self._drainer: asyncio.Task[None] | None = None
        self.wake_drainer = asyncio.Event()
        # discord.py runs each event handler as its own task; one lock per member keeps a
        # member's events in gateway order (a ban before the leave that follows it).
        self._locks: weakref.WeakValueDictionary[tuple[int, int], asyncio.Lock] = \
            weakref.WeakValueDictionary()

    def member_lock(self, guild_id: int, user_id: int) -> asyncio.Lock:
        lock = self._locks.get((guild_id, user_id))
        if lock is None:
            lock = asyncio.Lock()
            self._locks[(guild_id, user_id)] = lock
        return lock

    async def cog_load(self) -> None:
        self._drainer = asyncio.create_task(self._drain_forever(), name="spool-drainer")

    async def cog_unload(self) -> None:
        if self._drainer is not None:
            self._drainer.cancel()

    async def apply(self, guild_id: int, user_id: int, op: Operation,
                    joined_at: Any | None, reason: str) -> State | None:
        """Apply one event's operation; returns the new state, or None when not applied."""
        cmd = TransitionCommand(guild_id=guild_id, user_id=user_id, operation=op,
                                source=Source.BOT,
                                idempotency_key=event_key(op, guild_id, user_id, joined_at),
                                reason=reason)
        if self.spool.has_backlog():
            # Events wait behind the spooled ones, so a member's events keep their order.
            await self._spool(cmd)
            return None
        try:
            return await self.apply_command(cmd)
        except DatabaseUnavailable:
            await self._spool(cmd)
        return None

    async def apply_command(self, cmd: TransitionCommand) -> State | None:
        """Apply; a failure ends as a dead letter; only DatabaseUnavailable escapes."""
        op, guild_id, user_id = cmd.operation, cmd.guild_id, cmd.user_id
        try:
            result = await self.transitions.apply(cmd)
            return result.member.state
        except TransitionNotAllowed as exc:
            if is_echo(op, exc.current):
                log.debug("ignored %s for %s/%s: %s", op.value, guild_id, user_id, exc)
                return None
            entry = await self.transitions.record_not_applicable(cmd, exc)
            log.warning("%s for %s/%s does not apply (%s); dead letter #%d", op.value,
                        guild_id, user_id, exc, entry)
        except TransitionDeadLettered as exc:
            log.warning("%s for %s/%s: %s", op.value, guild_id, user_id, exc)
        except DatabaseUnavailable:
            raise
        except DomainError as exc:
            log.warning("%s for %s/%s refused: %s", op.value, guild_id, user_id, exc)
        return None

    async def _spool(self, cmd: TransitionCommand) -> None:
        try:
            await self.spool.append(cmd)
            log.warning("database unavailable: %s for %s/%s spooled to %s",
                        cmd.operation.value, cmd.guild_id, cmd.user_id, self.spool.path)
        except SpoolFull:
            log.error("LOST EVENT: %s for %s/%s could not be spooled (spool full): %s",
                      cmd.operation.value, cmd.guild_id, cmd.user_id, cmd.to_payload())
        self.wake_drainer.set()

    async def _drain_forever(self, interval: float = 0.5) -> None:
        """Apply spooled events in order as soon as the database answers again, then sync
        the members whose sync could not reach it."""
        while True:
            if self._resync and not self.spool.has_backlog():
                await self._sync_again()
            if self.spool.has_backlog():
                try:
                    applied = await self.spool.drain(self._apply_spooled)
                    if applied:
                        log.info("database back: applied %d spooled events", applied)
                except DatabaseUnavailable:
                    pass  # still down; try again shortly
                except Exception:
                    log.exception("draining the event spool failed; will try again")
            self.wake_drainer.clear()
            try:
                await asyncio.wait_for(self.wake_drainer.wait(), interval)
            except TimeoutError:
                pass

    async def _apply_spooled(self, cmd: TransitionCommand) -> None:
        async with self.member_lock(cmd.guild_id, cmd.user_id):
            await self.apply_command(cmd)

    # ---- the member sync: bring a member to what Discord shows -----------------------

    async def sync(self, member: discord.Member, reason: str) -> int:
        """Sync one member (domain/sync.py); returns how many operations were written.

        While spooled events wait, or when the database does not answer, the member is
        marked to be synced once the spool is drained and the database answers (a sync
        must not run ahead of a member's spooled leave and join). A sync that cannot finish
        is marked too; a write that fails for another reason is a dead letter (the service
        writes it)."""
        key = (member.guild.id, member.id)
        if self.spool.has_backlog():
            self._mark_for_resync(key, "events are spooled")
            return 0
        try:
            config = await self.guilds.get(member.guild.id)
            eligibility_role = config.eligibility_role_id if config else None
            outcome = await self.member_sync.sync(
                member.guild.id, member.id, member_flags(member, eligibility_role),
                eligibility_role_configured=eligibility_role is not None, reason=reason)
        except DatabaseUnavailable:
            self._mark_for_resync(key, "the database did not answer")
            return 0
        except TransitionDeadLettered as exc:
            log.warning("sync of %s/%s: %s", key[0], key[1], exc)
            return 0
        except DomainError as exc:
            log.warning("sync of %s/%s refused: %s", key[0], key[1], exc)
            return 0
        except Exception as exc:
            if is_unavailable(exc):
                self._mark_for_resync(key, "the database did not answer")
                return 0
            log.exception("sync of %s/%s failed", key[0], key[1])
            return 0
        if outcome.done:
            self._resync.pop(key, None)
        else:
            self._mark_for_resync(key, "the sync did not finish")
        return len(outcome.applied)

    def waiting_syncs(self) -> int:
        """Members marked to be synced once the spool is drained and the database answers."""
        return len(self._resync)

    def _mark_for_resync(self, key: tuple[int, int], why: str) -> None:
        if key not in self._resync:
            log.warning("member %s/%s: %s; synced again later", key[0], key[1], why)
        self._resync[key] = why
        self.wake_drainer.set()

    async def _sync_again(self) -> None:
        """One pass over the members marked for a sync, as Discord shows them now (looked
        up again: a reconnect or a rejoin replaces discord.py's member objects). The pass
        stops when events are spooled again or the database still does not answer."""
        for key in list(self._resync):
            if self.spool.has_backlog():
                return
            self._resync.pop(key, None)
            member = self._current_member(key)
            if member is None:
                continue  # gone meanwhile: its leave event says so
            async with self.member_lock(*key):
                await self.sync(member, "synced after the database answered again")
            if key in self._resync:
                return  # still failing: try the rest on the next round

    def _current_member(self, key: tuple[int, int]) -> discord.Member | None:
        guild = self.client.get_guild(key[0]) if self.client is not None else None
        return guild.get_member(key[1]) if guild is not None else None

    # ---- reconciliation: what happened while the bot was not connected -----------------

    @commands.Cog.listener()
    async def on_guild_available(self, guild: discord.Guild) -> None:
        """At start-up and after a reconnect: sync every member whose stored state differs
        from what Discord shows (the sync's keys make a second reconcile write nothing), and
        mark stored members who are gone as left."""
        try:
            applied = await self.reconcile(guild)
            if applied:
                log.info("guild %s: caught up %d missed lifecycle operations", guild.id,
                         applied)
        except Exception:
            log.exception("reconciling guild %s failed; live events still apply", guild.id)

    async def reconcile(self, guild: discord.Guild) -> int:
        for key in [k for k in self._resync if k[0] == guild.id]:
            del self._resync[key]  # every member of the guild is synced below
        stored = await self.transitions.member_states(guild.id)
        config = await self.guilds.get(guild.id)
        eligibility_role = config.eligibility_role_id if config else None
        applied = 0
        present: set[int] = set()
        for member in list(guild.members):
            if member.bot:
                continue
            present.add(member.id)
            state = stored.get(member.id, (None, 0))[0]
            if not catch_up(state, member_flags(member, eligibility_role),
                            eligibility_role_configured=eligibility_role is not None):
                continue  # already as Discord shows: no database work
            async with self.member_lock(guild.id, member.id):
                applied += await self.sync(member, "caught up after reconnect")
        for user_id, (state, version) in stored.items():
            if user_id in present or state in EXIT_STATES:
                continue
            async with self.member_lock(guild.id, user_id):
                cmd = TransitionCommand(guild_id=guild.id, user_id=user_id,
                                        operation=Operation.LEAVE, source=Source.BOT,
                                        idempotency_key=f"reconcile:leave:{guild.id}:"
                                                        f"{user_id}:v{version}",
                                        reason="not in the guild after reconnect")
                if await self.apply_command(cmd) is not None:
                    applied += 1
        return applied

    @commands.Cog.listener()
    async def on_member_join(self, member: discord.Member) -> None:
        if member.bot:
            return
        async with self.member_lock(member.guild.id, member.id):
            await self.apply(member.guild.id, member.id, Operation.JOIN, member.joined_at,
                             "joined the server")
            if member.flags.started_onboarding or member.flags.completed_onboarding:
                # Back with onboarding already done: the same sync as a member update
                # (marked for later when the join itself was spooled).
                await self.sync(member, "joined the server")

    @commands.Cog.listener()
    async def on_raw_member_remove(self, payload: discord.RawMemberRemoveEvent) -> None:
        user = payload.user
        if user.bot:
            return
        joined_at = user.joined_at if isinstance(user, discord.Member) else None
        async with self.member_lock(payload.guild_id, user.id):
            await self.apply(payload.guild_id, user.id, Operation.LEAVE, joined_at,
                             "left the server")

    @commands.Cog.listener()
    async def on_member_ban(self, guild: discord.Guild, user: discord.User | discord.Member
                            ) -> None:
        if user.bot:
            return
        joined_at = user.joined_at if isinstance(user, discord.Member) else None
        async with self.member_lock(guild.id, user.id):
            await self.apply(guild.id, user.id, Operation.BAN, joined_at, "banned")

    @commands.Cog.listener()
    async def on_member_unban(self, guild: discord.Guild, user: discord.User) -> None:
        if user.bot:
            return
        async with self.member_lock(guild.id, user.id):
            await self.apply(guild.id, user.id, Operation.UNBAN, None, "unbanned")

    @commands.Cog.listener()
    async def on_member_update(self, before: discord.Member, after: discord.Member) -> None:
        """Level-triggered: the update says "this member changed"; the sync brings them to
        what Discord shows now (`after` is discord.py's cached member, so the newest state,
        even when later updates arrived meanwhile). Updates of a member that arrive while a
        sync of theirs waits for its turn collapse into that sync."""
        if after.bot or not lifecycle_relevant(before, after):
            return  # a nickname, an avatar, a timeout: no database work at all
        key = (after.guild.id, after.id)
        if key in self._sync_queued:
            return
        mine = self._sync_queued[key] = object()
        try:
            async with self.member_lock(*key):
                # From here on, a new update queues a sync of its own: this one may already
                # have read the member when that update changes it.
                self._leave_queue(key, mine)
                # The member as Discord shows it now (after a rejoin or a reconnect,
                # discord.py holds a new object; `after` may be the old one).
                member = self._current_member(key) if self.client is not None else after
                if member is not None:
                    await self.sync(member, "member update")
        finally:
            self._leave_queue(key, mine)  # cancelled while waiting

    def _leave_queue(self, key: tuple[int, int], mine: object) -> None:
        if self._sync_queued.get(key) is mine:
            del self._sync_queued[key]
