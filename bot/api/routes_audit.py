"""/api/v1/guilds/{guild_id}/audit: the remediation audit trail (dead letters, deliveries)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from bot.api.deps import ContainerDep, GuildId
from bot.api.schemas import SnowflakeIn
from bot.api.schemas_audit import AuditOut, AuditPageOut
from domain.audit import MAX_AUDIT_LIMIT

router = APIRouter(prefix="/guilds/{guild_id}/audit", tags=["audit"])

IdQuery = Annotated[int | None, Query(ge=1, le=2**63 - 1)]


@router.get("", response_model=AuditPageOut, summary="Audit rows, newest first",
            description="Staff actions on dead letters and on outbox deliveries, newest "
            "first, in keyset pages (`before` = the previous page's `next_cursor`). Filters "
            "combine; `delivery_id=N` is `target_kind=delivery` and that delivery's rows. A "
            "deleted dead letter's rows stay, the last one with `status_after: deleted`.")
async def audit_page(
        guild_id: GuildId, c: ContainerDep,
        dead_letter_id: IdQuery = None,
        actor_id: Annotated[SnowflakeIn | None, Query(description="Discord user id")] = None,
        target_kind: Literal["dead_letter", "delivery"] | None = None,
        delivery_id: IdQuery = None,
        limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_LIMIT)] = 50,
        before: Annotated[str | None, Query(
            pattern=r"^[0-9]{1,19}$", description="next_cursor of the previous page")] = None,
) -> AuditPageOut:
    page = await c.audit.page(guild_id, dead_letter_id=dead_letter_id, actor_id=actor_id,
                              target_kind=target_kind, delivery_id=delivery_id, limit=limit,
                              before=before)
    return AuditPageOut(items=[AuditOut.of(r) for r in page.items],
                        next_cursor=page.next_cursor)
