"""The member sync: bring one member to what Discord shows now.

Level-triggered: it reads the stored state, asks the one rule (domain/member_sync.py) for
the next operation, and applies it in strict mode, expecting exactly the state and version
it read. When another writer got there first, the strict answer carries the member's
current state and version, and the sync decides again from those: a lost race is never a
dead letter, and however events bunched up or were lost, the member ends where the flags
say. Each step's idempotency key is the operation and the version it starts from, so a
repeated or reordered sync writes nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from domain.commands import TransitionCommand
from domain.errors import StrictConflict
from domain.member_sync import MemberFlags, next_sync_step, sync_key
from domain.transitions import TransitionService
from domain.vocabulary import Operation, Source, State

log = logging.getLogger(__name__)

# Every sync takes at most the onboarding path plus an unban and a join, and a few races.
MAX_STEPS = 16


@dataclass(frozen=True)
class SyncOutcome:
    applied: list[Operation]  # the operations this sync wrote
    state: State | None  # where the member is now
    version: int
    done: bool = True  # False: gave up after MAX_STEPS (sync again later)


class MemberSync:
    def __init__(self, transitions: TransitionService) -> None:
        self.transitions = transitions

    async def sync(self, guild_id: int, user_id: int, flags: MemberFlags, *,
                   eligibility_role_configured: bool, reason: str) -> SyncOutcome:
        """Bring the member to what `flags` imply; raises DatabaseUnavailable (nothing
        lost: sync again later), or TransitionDeadLettered when a step could not be written
        for another reason (kept as a dead letter, as every failed write)."""
        current = await self.transitions.get_member(guild_id, user_id)
        state, version = (current.state, current.version) if current else (None, 0)
        applied: list[Operation] = []
        for _ in range(MAX_STEPS):
            op = next_sync_step(state, flags,
                                eligibility_role_configured=eligibility_role_configured)
            if op is None:
                return SyncOutcome(applied, state, version)
            cmd = TransitionCommand(
                guild_id=guild_id, user_id=user_id, operation=op, source=Source.BOT,
                idempotency_key=sync_key(op, guild_id, user_id, version), reason=reason,
                expected_state=state, expected_version=version)
            try:
                result = await self.transitions.apply(cmd)
            except StrictConflict as exc:  # another writer first: decide again from now
                state = State(exc.current_state) if exc.current_state else None
                version = exc.current_version or 0
                continue
            if result.applied:
                applied.append(op)
            state, version = result.member.state, result.member.version
        log.warning("member %s/%s: sync gave up after %d steps at %s v%d", guild_id, user_id,
                    MAX_STEPS, state, version)
        return SyncOutcome(applied, state, version, done=False)
