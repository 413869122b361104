"""What a replay of a dead letter would do now, shown before anyone clicks (the console's
entry page): whether the member changed since it was recorded, and where the replayed
operation would take them from where they are now."""

from __future__ import annotations

from dataclasses import dataclass

from domain.entries import DeadLetterEntry
from domain.lifecycle import Operation, State, TransitionNotAllowed, target_state
from domain.remediation import RemediationService


@dataclass(frozen=True)
class ReplayPreview:
    stale: bool  # the member changed since the entry was recorded
    current_state: State | None
    current_version: int
    would: str  # in words: "verification_pending → verified", or why it is refused


async def preview(remediation: RemediationService, entry: DeadLetterEntry) -> ReplayPreview:
    changed = await remediation.stale_members([entry])
    member = await remediation.transitions.get_member(entry.guild_id, entry.user_id)
    state = member.state if member is not None else None
    version = member.version if member is not None else 0
    try:
        to_state = target_state(Operation(entry.operation), state)
        would = f"{state.value if state else 'new'} → {to_state.value}"
    except TransitionNotAllowed as refused:
        would = f"refused: {refused}"
    except ValueError:
        would = "its stored operation is unknown to this version"
    return ReplayPreview(entry.id in changed, state, version, would)
