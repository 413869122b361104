"""What Discord's member flags mean in lifecycle operations.

Two rules read the same flags, side by side and deliberately not merged yet (issue 12 moved
them here unchanged; making them one is a behaviour change of its own):

- `member_update_operations`, the live rule, is edge-triggered: a gateway member update
  yields the operations for the flags that changed between `before` and `after`, whatever
  the stored state (the service's guard decides what still applies).
- `catch_up`, the reconcile rule, is level-triggered: from the stored state and the flags
  Discord shows now, the operations that bring the member up to date.

docs/lifecycle.md says where they differ.
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


def member_update_operations(before: MemberFlags, after: MemberFlags, *,
                             eligibility_role_configured: bool
                             ) -> list[tuple[Operation, str]]:
    """The live rule: (operation, reason) for one gateway member update, in order."""
    ops: list[tuple[Operation, str]] = []
    if after.started_onboarding and not before.started_onboarding \
            and not after.completed_onboarding:
        ops.append((Operation.START_ONBOARDING, "started onboarding"))
    if after.completed_onboarding and not before.completed_onboarding:
        ops.append((Operation.COMPLETE_ONBOARDING, "completed onboarding"))
        if not eligibility_role_configured:
            ops.append((Operation.MARK_ROLE_ELIGIBLE, "no eligibility role configured"))
        elif after.holds_eligibility_role:
            ops.append((Operation.MARK_ROLE_ELIGIBLE, "holds the eligibility role"))
    elif eligibility_role_configured and after.holds_eligibility_role \
            and not before.holds_eligibility_role and after.completed_onboarding:
        ops.append((Operation.MARK_ROLE_ELIGIBLE, "was granted the eligibility role"))
    if before.pending and not after.pending:
        ops.append((Operation.ACCEPT_RULES, "passed membership screening"))
    return ops


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
