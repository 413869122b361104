"""/api/v1/guilds/{guild_id}/dead-letters: the same RemediationService as /dlq and the CLI."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from bot.api.deps import ContainerDep, EntryId, GuildId
from bot.api.errors import responses
from bot.api.schemas import (
    MAX_SIGNATURE,
    DeadLetterDetail,
    DeadLetterOut,
    DeadLetterPage,
    DeletedOut,
    GroupRetryOut,
    NoteBody,
    OptionalNoteBody,
    RemediationOut,
    RetryAllBody,
    RetryAllOut,
    RetryBody,
    RetryGroupBody,
    RetryOut,
    SafeText,
    SnowflakeIn,
    StatsOut,
    StatusFilter,
)
from domain.dead_letter_reads import MAX_LIMIT
from domain.lifecycle import Operation, Source
from domain.remediation import RETRY_ALL_LIMIT

DEFAULT_COUNT_LIMIT = 1000  # as /dlq list ("1000+")
MAX_COUNT_LIMIT = 10_000_000

router = APIRouter(prefix="/guilds/{guild_id}/dead-letters", tags=["dead letters"])


@router.get("", response_model=DeadLetterPage, summary="Dead letters, newest first",
            description="Without `status`, the unresolved entries (`open` and `retrying`); "
            "`status=<one status>` selects that one, `status=unresolved` the default, "
            "`status=all` every status. `order=oldest` pages oldest first (keyset pages "
            "either way: pass `next_cursor` as `cursor`).")
async def list_dead_letters(
        guild_id: GuildId, c: ContainerDep,
        status: StatusFilter | None = None,
        operation: Operation | None = None,
        source: Source | None = None,
        signature: Annotated[SafeText | None,
                             Query(min_length=1, max_length=MAX_SIGNATURE)] = None,
        user_id: Annotated[SnowflakeIn | None, Query(description="Discord user id")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
        cursor: Annotated[str | None, Query(
            pattern=r"^[0-9]{1,19}$", description="next_cursor of the previous page")] = None,
        count_limit: Annotated[int, Query(
            ge=1, le=MAX_COUNT_LIMIT,
            description="with a source or user_id filter, count matches up to this many; "
                        "past it `total_exact` is false (the other filters' totals are "
                        "exact: they come from counters)")
        ] = DEFAULT_COUNT_LIMIT,
        order: Literal["newest", "oldest"] = "newest",
) -> DeadLetterPage:
    page = await c.remediation.page(guild_id, status=status, operation=operation,
                                    source=source, signature=signature, user_id=user_id,
                                    limit=limit, cursor=cursor, count_limit=count_limit,
                                    order=order)
    return DeadLetterPage(items=[DeadLetterOut.of(e) for e in page.items],
                          next_cursor=page.next_cursor,
                          total=page.total if page.total_exact else count_limit,
                          total_exact=page.total_exact)


# Declared before /{entry_id} so that "stats" is not read as an id.
@router.get("/stats", response_model=StatsOut, summary="Counts by status and by signature")
async def dead_letter_stats(guild_id: GuildId, c: ContainerDep) -> StatsOut:
    stats = await c.remediation.stats(guild_id)
    return StatsOut.model_validate(asdict(stats))


@router.post("/retry-group", response_model=GroupRetryOut,
             summary="Replay every open entry of one signature")
async def retry_group(guild_id: GuildId, body: RetryGroupBody,
                      c: ContainerDep) -> GroupRetryOut:
    result = await c.remediation.retry_group(guild_id, body.signature, body.actor_id,
                                             Source.API, force=body.force)
    return GroupRetryOut.model_validate(asdict(result))


@router.post("/retry-all", response_model=RetryAllOut,
             summary="Replay every unresolved entry matching the list's filters",
             description="The filters and names of the list (`status`: open, retrying or "
             "unresolved, the default). Open entries are replayed, oldest first, at most "
             f"{RETRY_ALL_LIMIT:,} per request (`remaining` counts the rest: send it again); "
             "retrying ones are skipped and counted; stale ones are skipped unless `force`. "
             "`dry_run` answers `matched` only and changes nothing.")
async def retry_all(guild_id: GuildId, body: RetryAllBody, c: ContainerDep) -> RetryAllOut:
    f = body.filters
    result = await c.remediation.retry_all(
        guild_id, body.actor_id, Source.API, status=f.status, operation=f.operation,
        signature=f.signature, entry_source=f.source, user_id=f.user_id, force=body.force,
        dry_run=body.dry_run)
    return RetryAllOut.model_validate(asdict(result))


@router.get("/{entry_id}", response_model=DeadLetterDetail, responses=responses(404),
            summary="Every field of one entry and its remediation history")
async def show_dead_letter(guild_id: GuildId, entry_id: EntryId,
                           c: ContainerDep) -> DeadLetterDetail:
    entry, history = await c.remediation.show(guild_id, entry_id)
    return DeadLetterDetail(**DeadLetterOut.of(entry).model_dump(),
                            stack_trace=entry.stack_trace,
                            history=[RemediationOut.of(h) for h in history])


@router.post("/{entry_id}/retry", response_model=RetryOut, responses=responses(404, 409),
             summary="Replay one entry now",
             description="200 either way: `resolved: false` means the replay failed and the "
             "entry is open again with the new error.")
async def retry_dead_letter(guild_id: GuildId, entry_id: EntryId, body: RetryBody,
                            c: ContainerDep) -> RetryOut:
    outcome = await c.remediation.retry(guild_id, entry_id, body.actor_id, Source.API,
                                        force=body.force)
    return RetryOut(entry=DeadLetterOut.of(outcome.entry), resolved=outcome.resolved,
                    detail=outcome.detail, already_applied=outcome.already_applied)


@router.post("/{entry_id}/resolve", response_model=DeadLetterOut,
             responses=responses(404, 409), summary="Mark an open entry resolved, with a note")
async def resolve_dead_letter(guild_id: GuildId, entry_id: EntryId, body: NoteBody,
                              c: ContainerDep) -> DeadLetterOut:
    return DeadLetterOut.of(await c.remediation.resolve(guild_id, entry_id, body.actor_id,
                                                        body.note, Source.API))


@router.post("/{entry_id}/dismiss", response_model=DeadLetterOut,
             responses=responses(404, 409), summary="Dismiss an open entry, with a note")
async def dismiss_dead_letter(guild_id: GuildId, entry_id: EntryId, body: NoteBody,
                              c: ContainerDep) -> DeadLetterOut:
    return DeadLetterOut.of(await c.remediation.dismiss(guild_id, entry_id, body.actor_id,
                                                        body.note, Source.API))


@router.post("/{entry_id}/reopen", response_model=DeadLetterOut,
             responses=responses(404, 409), summary="Reopen a resolved or dismissed entry")
async def reopen_dead_letter(guild_id: GuildId, entry_id: EntryId, body: OptionalNoteBody,
                             c: ContainerDep) -> DeadLetterOut:
    return DeadLetterOut.of(await c.remediation.reopen(guild_id, entry_id, body.actor_id,
                                                       Source.API, body.note))


DELETE_DESCRIPTION = ("Deletes the entry (any status but `retrying`: 409), with a note. Its "
                      "audit rows stay, with one more saying who deleted it and why.")


@router.delete("/{entry_id}", response_model=DeletedOut, responses=responses(404, 409),
               summary="Delete an entry, with a note", description=DELETE_DESCRIPTION)
async def delete_dead_letter(guild_id: GuildId, entry_id: EntryId, body: NoteBody,
                             c: ContainerDep) -> DeletedOut:
    return DeletedOut(deleted=DeadLetterOut.of(await c.remediation.delete(
        guild_id, entry_id, body.actor_id, body.note, Source.API)))


@router.post("/{entry_id}/delete", response_model=DeletedOut, responses=responses(404, 409),
             summary="Delete an entry, with a note (for clients that cannot send a DELETE "
                     "body)", description=DELETE_DESCRIPTION)
async def delete_dead_letter_by_post(guild_id: GuildId, entry_id: EntryId, body: NoteBody,
                                     c: ContainerDep) -> DeletedOut:
    return await delete_dead_letter(guild_id, entry_id, body, c)
