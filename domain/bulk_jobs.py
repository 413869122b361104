"""Bulk retries started from the console: a row in `bulk_jobs` records the job and its
progress, so the page showing it survives a reload and works through any API replica; the
process that started it runs it (RemediationService.retry_all) and writes its progress."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from domain.lifecycle import Source
from domain.persistence.bulk_jobs import BulkJobStore
from domain.records import BulkJobRow
from domain.redaction import redact
from domain.remediation import RemediationService

log = logging.getLogger(__name__)
PROGRESS_EVERY_SECONDS = 0.5
# A running job not updated for this long lost its process (shown as interrupted).
STALLED_SECONDS = 60.0


class BulkJobs:
    def __init__(self, store: BulkJobStore, remediation: RemediationService) -> None:
        self.store = store
        self.remediation = remediation
        self._tasks: set[asyncio.Task[None]] = set()

    async def start_retry_all(self, guild_id: int, actor_id: int, filters: dict[str, Any],
                              *, force: bool, source: Source = Source.CONSOLE) -> int:
        """Record the job and start it in this process; its id (read it with `get`)."""
        job_id = await self.store.create(guild_id, actor_id, filters, force)
        task = asyncio.create_task(self._run(job_id, guild_id, actor_id, filters, force,
                                             source))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job_id

    async def get(self, guild_id: int, job_id: int) -> BulkJobRow | None:
        return await self.store.get(guild_id, job_id)

    async def wait(self) -> None:
        """Until the jobs this process runs are done (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, job_id: int, guild_id: int, actor_id: int, filters: dict[str, Any],
                   force: bool, source: Source) -> None:
        last = 0.0

        async def progress(done: int, total: int, resolved: int) -> None:
            nonlocal last
            now = time.monotonic()
            if done < total and now - last < PROGRESS_EVERY_SECONDS:
                return
            last = now
            await self.store.progress(job_id, done, total, resolved)

        try:
            member = filters.get("member")
            result = await self.remediation.retry_all(
                guild_id, actor_id, source, progress, status=filters.get("status"),
                operation=filters.get("operation"), signature=filters.get("signature"),
                entry_source=filters.get("source"),
                user_id=int(member) if member else None, force=force)
        except Exception as exc:
            log.exception("bulk job %s of guild %s failed", job_id, guild_id)
            await self.store.finish(job_id, status="failed", error=redact(str(exc), 500))
            return
        done = result.resolved + result.failed + result.skipped + result.stale
        await self.store.finish(job_id, done=done, total=result.matched - result.remaining,
                                resolved=result.resolved, failed=result.failed,
                                skipped=result.skipped, stale=result.stale,
                                remaining=result.remaining)
