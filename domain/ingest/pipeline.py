"""The ingest pipeline: gateway member events are logged (durably), then applied by a
bounded set of workers, in order per member, many members per statement.

`submit` appends an event to the ingest log and returns once it is on disk: reading the
gateway never waits on the database. Each member belongs to one of `workers` partitions
(by its ids), so its events are applied in log order by one worker; a worker takes up to
`batch_size` queued events at a time, groups them by member (membership operations in
order, then one sync for any number of updates: they collapse) and hands the batch to the
BatchApplier. A member update that finds an update of the same member still queued adds
nothing (the queued one reads the member when it runs) and is not even logged.

When the database is slow or down only the lag grows: a worker keeps its batch and tries
again, with backoff. The log's committed position advances past an event only once every
event before it is applied, so a crash replays from there. When the log is full
(SPOOL_MAX_BYTES) an event is refused: it is counted, logged loudly, and its guild is
marked for a full reconcile once the log has room again (the member sync makes that a
complete repair).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from domain.errors import DatabaseUnavailable, DomainError
from domain.ingest.applier import BatchApplier, MemberView, MemberWork
from domain.ingest.events import REASONS, EventKind, MemberEvent
from domain.ingest.log import IngestLog, LogClosed, LogFull, Logged
from domain.member_sync import MemberFlags

log = logging.getLogger(__name__)

# A batch whose statements fail unexpectedly this many times more is applied member by
# member on the single path (where each failure is a member's dead letter).
UNEXPECTED_RETRIES = 2
# The log counts as refusing events (loud in /healthz) this long after its last refusal.
REFUSING_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class IngestStatus:
    backlog: int  # events waiting to be applied
    lag_seconds: float  # age of the oldest waiting event (0 when none waits)
    dropped: int  # events refused because the log was full (or failing), since start
    failed: int  # events or members that could not be applied nor dead-lettered
    log_bytes: int  # bytes of waiting events in the log
    max_bytes: int
    guilds_to_reconcile: int  # guilds that lost events and wait for a full reconcile
    refusing: bool = False  # the log refused an event within the last REFUSING_SECONDS


@dataclass(slots=True)
class _Item:
    position: int  # in the log (for reconcile's items: the log's end when queued)
    event: MemberEvent
    durable: bool


class Ingestion:
    def __init__(self, ingest_log: IngestLog, applier: BatchApplier, view: MemberView, *,
                 workers: int = 4, batch_size: int = 256,
                 reconcile: Callable[[int], Awaitable[object]] | None = None,
                 retry_initial: float = 0.2, retry_max: float = 5.0) -> None:
        self.log = ingest_log
        self.applier = applier
        self.batch_size = batch_size
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.reconcile_guild = reconcile  # how a guild that lost events is repaired
        self._queues: list[deque[_Item]] = [deque() for _ in range(workers)]
        # The positions of the durable items of each queue, in order: what holds the log's
        # committed position back (reconcile's items are not in the log and hold nothing).
        self._durable: list[deque[int]] = [deque() for _ in range(workers)]
        self._inflight: list[int | None] = [None] * workers  # first durable position applied
        self._inflight_at: list[float | None] = [None] * workers
        self._inflight_count = [0] * workers
        self._wake = [asyncio.Event() for _ in range(workers)]
        self._queued_updates: set[tuple[int, int]] = set()
        # Members with membership events queued and not yet taken by their worker: a sync
        # of theirs waits for those (it would read the member of a later stint and write
        # it onto the earlier one); the join that is queued syncs them in its turn.
        self._queued_membership: dict[tuple[int, int], int] = {}
        self._view = _Behind(view, self._queued_membership)
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0
        self.last_refused: float | None = None  # time.monotonic() of the last refusal
        self.failed = 0
        self.full_guilds: set[int] = set()
        self._full_episode = False
        self.statements = 0  # batch statements run (reads and writes)
        self.batched_operations = 0  # operations they wrote (the single path not counted)
        self.idle = asyncio.Event()
        self.idle.set()
        self.log.on_durable = self._enqueue_logged  # durable events queue in log order

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> int:
        """Open the log (replaying what a previous run did not apply) and start the
        workers; answers how many events were replayed."""
        replay = await asyncio.to_thread(self.log.open)
        for entry in replay:
            self._count_membership(entry.event, +1)
        self._enqueue_logged(replay)
        if replay:
            log.warning("ingest log: %d events logged before a restart are applied now",
                        len(replay))
        for n in range(len(self._queues)):
            self._tasks.append(asyncio.create_task(self._work(n), name=f"ingest-worker-{n}"))
        return len(replay)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.log.aclose()

    # ---- in -----------------------------------------------------------------------------

    async def submit(self, event: MemberEvent) -> bool:
        """Log the event and queue it; returns once it is durable. False when it was not
        logged (the log is full, or the disk failed): counted, and its guild is marked for a
        full reconcile."""
        member = (event.guild_id, event.user_id)
        if event.kind is EventKind.UPDATE:
            if member in self._queued_updates:
                return True  # the queued update syncs the member as Discord shows it then
            self._queued_updates.add(member)
        self._count_membership(event, +1)  # from now on, no sync runs ahead of it
        try:
            await self.log.append(event)
        except (LogFull, OSError) as exc:
            if event.kind is EventKind.UPDATE:
                self._queued_updates.discard(member)
            self._count_membership(event, -1)
            self._lost(event, exc)
            return False
        return True

    def _count_membership(self, event: MemberEvent, change: int) -> None:
        if event.operation is None:
            return
        member = (event.guild_id, event.user_id)
        left = self._queued_membership.get(member, 0) + change
        if left > 0:
            self._queued_membership[member] = left
        else:
            self._queued_membership.pop(member, None)

    def sync_members(self, guild_id: int, user_ids: list[int], reason: str) -> None:
        """Queue a sync of these members (reconcile: derived from Discord again, so not
        logged), behind their logged events."""
        at = time.time()
        for user_id in user_ids:
            member = (guild_id, user_id)
            if member in self._queued_updates:
                continue  # a queued update or sync of theirs does the same
            self._queued_updates.add(member)
            self._queue(_Item(self.log.end, MemberEvent(EventKind.SYNC, guild_id, user_id, at,
                                                        reason=reason), durable=False))

    def queue_event(self, event: MemberEvent) -> None:
        """Queue a membership event that needs no log (reconcile's leave of a member who is
        gone: derived from Discord again after a crash)."""
        self._count_membership(event, +1)
        self._queue(_Item(self.log.end, event, durable=False))

    def _lost(self, event: MemberEvent, exc: BaseException) -> None:
        self.dropped += 1
        self.last_refused = time.monotonic()
        self.full_guilds.add(event.guild_id)
        if isinstance(exc, LogClosed):
            log.warning("%s of member %s/%s arrived while shutting down: not logged (the "
                        "reconcile at the next start covers it)", event.kind.value,
                        event.guild_id, event.user_id)
            return
        if not self._full_episode:
            self._full_episode = True
            log.error("INGEST LOG FULL OR FAILING (%s): gateway events are being dropped and "
                      "counted (lifeline_ingest_dropped_events_total); guild %s will be "
                      "reconciled in full once the log has room", exc, event.guild_id)
        log.warning("dropped %s of member %s/%s: %s", event.kind.value, event.guild_id,
                    event.user_id, exc)

    def _enqueue_logged(self, logged: list[Logged]) -> None:
        for entry in logged:
            self._queue(_Item(entry.position, entry.event, durable=True))

    def _queue(self, item: _Item) -> None:
        n = self.partition_of(item.event.guild_id, item.event.user_id)
        self._queues[n].append(item)
        if item.durable:
            self._durable[n].append(item.position)
        self._wake[n].set()
        self.idle.clear()

    def partition_of(self, guild_id: int, user_id: int) -> int:
        """The worker that applies this member's events."""
        return hash((guild_id, user_id)) % len(self._queues)

    # ---- out ----------------------------------------------------------------------------

    async def _work(self, n: int) -> None:
        """Worker n, until cancelled: a failure is logged and the worker goes on (a dead
        worker would hold its members' events, and the log's committed position, forever)."""
        while True:
            try:
                await self._work_once(n)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ingest worker %d failed; it goes on", n)
                await asyncio.sleep(self.retry_initial)

    async def _work_once(self, n: int) -> None:
        queue, wake = self._queues[n], self._wake[n]
        if not queue:
            self._update_idle()
            await self._commit()  # also retries a commit that failed
            wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as its timeout fires, and stop() then waited forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await wake.wait()
            return
        items = [queue.popleft() for _ in range(min(self.batch_size, len(queue)))]
        durable = [item.position for item in items if item.durable]
        for _ in durable:
            self._durable[n].popleft()
        self._inflight[n] = durable[0] if durable else None
        self._inflight_at[n] = min(item.event.at for item in items)
        self._inflight_count[n] = len(items)
        for item in items:
            member = (item.event.guild_id, item.event.user_id)
            if item.event.kind in (EventKind.UPDATE, EventKind.SYNC):
                self._queued_updates.discard(member)
            self._count_membership(item.event, -1)
        try:
            await self._apply_until_done(items)
        finally:
            self._inflight[n] = None
            self._inflight_at[n] = None
            self._inflight_count[n] = 0
        await self._commit()
        await self._repair_lost_guilds()

    async def _apply_until_done(self, items: list[_Item]) -> None:
        """Apply a batch; the same work again (it goes on where it stopped) while the
        database does not answer, and after UNEXPECTED_RETRIES unexpected failures member
        by member on the single path."""
        work = self._work_of(items)
        delay = self.retry_initial
        failures = 0
        while True:
            try:
                result = await self.applier.apply(
                    work, self._view, batched=failures <= UNEXPECTED_RETRIES)
            except DatabaseUnavailable as exc:
                log.warning("ingest: database unavailable (%s); %d events wait, trying again "
                            "in %.1fs", exc, len(items), delay)
            except Exception:
                failures += 1
                log.exception("ingest: a batch of %d events failed (%d); trying again in "
                              "%.1fs%s", len(items), failures, delay,
                              ", member by member" if failures > UNEXPECTED_RETRIES else "")
            else:
                self.statements += result.statements
                self.batched_operations += result.applied
                for guild_id, _user_id in result.failed:
                    self.failed += 1
                    self.full_guilds.add(guild_id)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)

    def _work_of(self, items: list[_Item]) -> list[MemberWork]:
        """Group a batch's events by member, in order: membership operations, then one sync
        (for any number of updates, a join, or reconcile). An event that cannot become a
        command (a damaged log line) is counted, and its guild reconciled."""
        work: dict[tuple[int, int], MemberWork] = {}
        for item in items:
            event = item.event
            key = (event.guild_id, event.user_id)
            member = work.get(key)
            if member is None:
                member = work[key] = MemberWork(event.guild_id, event.user_id)
            if event.operation is not None:
                try:
                    member.ops.append(event.command())
                except DomainError as exc:
                    log.error("ingest: event %s of %s/%s skipped (%s); the guild will be "
                              "reconciled", event.kind.value, event.guild_id, event.user_id,
                              exc)
                    self.failed += 1
                    self.full_guilds.add(event.guild_id)
            if event.kind in (EventKind.UPDATE, EventKind.JOIN, EventKind.SYNC):
                member.sync = True
                member.reason = event.reason or REASONS[event.kind]
        return list(work.values())

    async def _commit(self) -> None:
        heads = [p for p in self._inflight if p is not None]
        heads += [d[0] for d in self._durable if d]
        try:
            await self.log.commit(min(heads) if heads else self.log.end)
        except OSError as exc:  # a replay after a crash re-applies more; nothing is lost
            log.error("ingest log: recording the committed position failed: %s", exc)

    async def _repair_lost_guilds(self) -> None:
        if not self.full_guilds or self.log.waiting_bytes() > self.log.max_bytes // 2:
            return
        self._full_episode = False
        guilds, self.full_guilds = self.full_guilds, set()
        for guild_id in guilds:
            log.warning("ingest log has room again: reconciling guild %s in full (it lost "
                        "events while the log was full)", guild_id)
            if self.reconcile_guild is not None:
                try:
                    await self.reconcile_guild(guild_id)
                except Exception:
                    log.exception("reconciling guild %s failed; marked again", guild_id)
                    self.full_guilds.add(guild_id)

    def _update_idle(self) -> None:
        if not any(self._queues) and not any(self._inflight_count):
            self.idle.set()

    async def wait_idle(self) -> None:
        """Until nothing is queued or being applied."""
        while True:
            await self.idle.wait()
            await asyncio.sleep(0)  # a worker may have just taken a batch
            if self.idle.is_set():
                return

    # ---- what it reports ----------------------------------------------------------------

    def status(self) -> IngestStatus:
        now = time.time()
        oldest = [at for at in self._inflight_at if at is not None]
        oldest += [q[0].event.at for q in self._queues if q]
        backlog = sum(map(len, self._queues)) + sum(self._inflight_count)
        return IngestStatus(backlog=backlog,
                            lag_seconds=max(0.0, now - min(oldest)) if oldest else 0.0,
                            dropped=self.dropped, failed=self.failed,
                            log_bytes=self.log.waiting_bytes(),
                            max_bytes=self.log.max_bytes,
                            guilds_to_reconcile=len(self.full_guilds),
                            refusing=self.last_refused is not None
                            and time.monotonic() - self.last_refused < REFUSING_SECONDS)


class _Behind:
    """The view of Discord the workers sync from: no sync of a member whose membership
    events are still queued (see Ingestion._queued_membership)."""

    def __init__(self, view: MemberView, queued: dict[tuple[int, int], int]) -> None:
        self.view = view
        self.queued = queued

    def member_flags(self, guild_id: int, user_id: int,
                     eligibility_role_id: int | None) -> MemberFlags | None:
        if (guild_id, user_id) in self.queued:
            return None
        return self.view.member_flags(guild_id, user_id, eligibility_role_id)
