"""/api/v1/guilds/{guild_id}/members/{user_id}: read a member, its ledger, and transition it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from bot.api.deps import ContainerDep, CorrelationId, GuildId, UserId
from bot.api.errors import responses
from bot.api.schemas import LedgerEntryOut, LedgerOut, MemberOut, TransitionOut, TransitionRequest
from domain.commands import MemberSnapshot, TransitionCommand
from domain.errors import NotFound
from domain.lifecycle import Source

router = APIRouter(prefix="/guilds/{guild_id}/members/{user_id}", tags=["members"])


def _member(snapshot: MemberSnapshot) -> MemberOut:
    return MemberOut(guild_id=snapshot.guild_id, user_id=snapshot.user_id,
                     state=snapshot.state, version=snapshot.version,
                     updated_at=snapshot.updated_at)


def _unknown(guild_id: int, user_id: int) -> NotFound:
    return NotFound(f"member {user_id} has no record in guild {guild_id}")


@router.get("", response_model=MemberOut, responses=responses(404),
            summary="A member's current state and version")
async def get_member(guild_id: GuildId, user_id: UserId, c: ContainerDep) -> MemberOut:
    snapshot = await c.transitions.get_member(guild_id, user_id)
    if snapshot is None:
        raise _unknown(guild_id, user_id)
    return _member(snapshot)


@router.get("/transitions", response_model=LedgerOut, responses=responses(404),
            summary="The member's transition ledger, newest first")
async def get_transitions(guild_id: GuildId, user_id: UserId, c: ContainerDep,
                          limit: Annotated[int, Query(ge=1, le=100)] = 20) -> LedgerOut:
    entries = await c.transitions.history(guild_id, user_id, limit)
    if not entries:  # every member has at least its `join` row
        raise _unknown(guild_id, user_id)
    return LedgerOut(items=[LedgerEntryOut.model_validate(e, from_attributes=True)
                            for e in entries])


@router.post(
    "/transitions", response_model=TransitionOut, responses=responses(409, 503),
    summary="Apply an operation (source `api`)",
    description="Validated against the transition table and written with a compare-and-set. "
    "A repeated idempotency key answers with the first result (`applied: false`). With "
    "`expected_state` / `expected_version` (strict mode) a mismatch is answered at once with "
    "409 `version_conflict` carrying the current state and version. 422 "
    "`transition_not_allowed` names the operation and the current state. 503 "
    "`dead_lettered`: the write is kept as dead letter `dead_letter_id`, not lost.")
async def post_transition(guild_id: GuildId, user_id: UserId, body: TransitionRequest,
                          c: ContainerDep, correlation_id: CorrelationId) -> TransitionOut:
    command = TransitionCommand(
        guild_id=guild_id, user_id=user_id, operation=body.operation, source=Source.API,
        idempotency_key=body.idempotency_key, actor_id=body.actor_id, reason=body.reason,
        correlation_id=correlation_id, expected_state=body.expected_state,
        expected_version=body.expected_version)
    result = await c.transitions.apply(command)
    return TransitionOut(member=_member(result.member), transition_id=result.transition_id,
                         applied=result.applied, already_there=result.already_there,
                         operation=result.operation, from_state=result.from_state)
