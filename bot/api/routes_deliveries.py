"""/api/v1/guilds/{guild_id}/deliveries: side effects (role changes, log-channel lines) that
failed, their attempts, and their retry: the same DeliveryService as /dlq and the CLI."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from bot.api.deps import ContainerDep, GuildId
from bot.api.errors import responses
from bot.api.schemas_deliveries import (
    DeliveryAttemptOut,
    DeliveryDetail,
    DeliveryOut,
    DeliveryPageOut,
    DeliveryRetryBody,
    DeliveryRetryOut,
    RetryFailedBody,
)
from domain.commands import MAX_SNOWFLAKE
from domain.deliveries import FAILED_STATUSES, MAX_PAGE, SHOWN_ATTEMPTS
from domain.lifecycle import Source
from domain.vocabulary import DeliveryStatus, OutboxKind

DeliveryId = Annotated[int, Path(ge=1, le=MAX_SNOWFLAKE, description="delivery id (D<id>)")]

router = APIRouter(prefix="/guilds/{guild_id}/deliveries", tags=["deliveries"])


@router.get("", response_model=DeliveryPageOut, summary="Deliveries, newest first",
            description="By default the failed ones (`failed` and `dead_lettered`): those "
                        "that will not be tried again unless staff retry them.")
async def list_deliveries(
        guild_id: GuildId, c: ContainerDep,
        status: DeliveryStatus | None = None,
        kind: OutboxKind | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
        cursor: Annotated[str | None, Query(
            pattern=r"^[0-9]{1,19}$", description="next_cursor of the previous page")] = None,
) -> DeliveryPageOut:
    page = await c.deliveries.page(guild_id, statuses=[status] if status else FAILED_STATUSES,
                                   kind=kind, cursor=cursor, limit=limit)
    return DeliveryPageOut(items=[DeliveryOut.of(d) for d in page.items],
                           next_cursor=page.next_cursor)


@router.post("/retry-failed", response_model=DeliveryRetryOut,
             summary="Retry the guild's failed deliveries",
             description="Oldest first, up to 1,000 a call (`more`: call again). Log lines "
                         "go to the log channel as set now, in their order; role changes "
                         "are decided again from the member's current state, and those that "
                         "no longer apply are skipped and counted as `stale`.")
async def retry_failed(guild_id: GuildId, body: RetryFailedBody,
                       c: ContainerDep) -> DeliveryRetryOut:
    return DeliveryRetryOut.of(await c.deliveries.retry_failed(
        guild_id, body.actor_id, Source.API, kind=body.kind))


@router.get("/{delivery_id}", response_model=DeliveryDetail, responses=responses(404),
            summary="One delivery, its cause and its attempts",
            description=f"The newest {SHOWN_ATTEMPTS} attempts, oldest first "
                        "(`earlier_attempts`: older ones exist).")
async def show_delivery(guild_id: GuildId, delivery_id: DeliveryId,
                        c: ContainerDep) -> DeliveryDetail:
    delivery, timeline = await c.deliveries.show(guild_id, delivery_id)
    return DeliveryDetail(**DeliveryOut.of(delivery).model_dump(),
                          attempts_timeline=[DeliveryAttemptOut.of(a)
                                             for a in timeline.attempts],
                          earlier_attempts=timeline.earlier)


@router.post("/{delivery_id}/retry", response_model=DeliveryRetryOut,
             responses=responses(404, 409), summary="Retry one failed delivery",
             description="409 `invalid_status` when it has not failed. A role change that "
                         "the member's current state no longer calls for is skipped "
                         "(`stale: 1`).")
async def retry_delivery(guild_id: GuildId, delivery_id: DeliveryId,
                         body: DeliveryRetryBody, c: ContainerDep) -> DeliveryRetryOut:
    return DeliveryRetryOut.of(await c.deliveries.retry(guild_id, delivery_id, body.actor_id,
                                                        Source.API))
