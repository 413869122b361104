"""What Discord's member flags mean in lifecycle operations.

One rule, level-triggered, for live member updates and for reconcile alike: from the
stored state and what Discord shows now (the member's current flags), the operations that
bring the member there (`catch_up`). Discord is the source of truth for membership and the
onboarding flags; the web app and staff own the verification states, so a member at or
past the state the flags imply is left alone. The member sync (domain/sync.py) applies
them one at a time, each keyed by the stored version it starts from (`sync_key`), so
repeats, reorderings and a second sync racing the first are harmless.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.lifecycle import EXIT_STATES, FromState, Operation, State


@dataclass(frozen=True)
class MemberFlags:
    """One member as Discord shows it, reduced to what the lifecycle reads."""

    started_onboarding: bool = False
    completed_onboarding: bool = False
    pending: bool = False  # membership screening not passed yet
    # The guild's configured eligibility role is among the member's roles (False when the
    # guild has none configured).
    holds_eligibility_role: bool = False


def catch_up(current: FromState, flags: MemberFlags, *,
             eligibility_role_configured: bool) -> list[Operation]:
    """The reconcile rule: the onboarding operations that bring a stored member up to what
    Discord shows now.

    Used when the bot (re)connects: events missed while it was down are derived from the
    member's current flags, in lifecycle order. Exit states and None start with a join
    (after an unban when the member was banned).
    """
    eligible = not eligibility_role_configured or flags.holds_eligibility_role
    ops: list[Operation] = []
    state: FromState = current
    if state == State.BANNED:  # present again: the unban and the rejoin were missed
        ops.append(Operation.UNBAN)
        state = State.LEFT_GUILD
    if state is None or state in EXIT_STATES:
        ops.append(Operation.JOIN)
        state = State.JOINED
    if state == State.JOINED and (flags.started_onboarding or flags.completed_onboarding):
        if flags.completed_onboarding:
            ops.append(Operation.COMPLETE_ONBOARDING)
            state = State.ONBOARDING_COMPLETED
        else:
            ops.append(Operation.START_ONBOARDING)
            state = State.ONBOARDING_IN_PROGRESS
    if state == State.ONBOARDING_IN_PROGRESS and flags.completed_onboarding:
        ops.append(Operation.COMPLETE_ONBOARDING)
        state = State.ONBOARDING_COMPLETED
    if state == State.ONBOARDING_COMPLETED and eligible:
        ops.append(Operation.MARK_ROLE_ELIGIBLE)
        state = State.ROLE_ELIGIBLE
    if state == State.ROLE_ELIGIBLE and not flags.pending:
        ops.append(Operation.ACCEPT_RULES)
    return ops


def next_sync_step(current: FromState, flags: MemberFlags, *,
                   eligibility_role_configured: bool) -> Operation | None:
    """The first operation towards what Discord shows, or None when the member is there
    (or past it, in the states the web app and staff own)."""
    ops = catch_up(current, flags, eligibility_role_configured=eligibility_role_configured)
    return ops[0] if ops else None


def sync_key(op: Operation, guild_id: int, user_id: int, version: int) -> str:
    """The idempotency key of a sync step: the operation and the stored version it starts
    from (0: no record). Two syncs that read the same version ask for the same write; a
    member re-admitted after leaving starts from a newer version, so gets a new key."""
    return f"sync:{op.value}:{guild_id}:{user_id}:v{version}"
