"""Role drift: the verified role as Discord shows it, against what Lifeline stored.

A role granted or removed by hand, a delivery that failed for good (the bot's role below
the verified role, Manage Roles taken away), a role wiped by another bot: Discord no longer
shows what the member's state says. The repair compares the two for every member present
and queues the missing changes through the outbox (role_sync rows on the member's lane, so
they stay in order with the member's transitions):

- a `verified` member without the role gets it;
- a member Lifeline moved out of `verified` (the ledger says so) who still holds it loses it;
- a member who holds the role but was never moved out of `verified` by Lifeline is left
  alone: a person gave it, and Lifeline does not undo staff's decisions it never made.

The policy is `role_wanted` (domain/transitions.py), the same one a retried role delivery
reads. The members are read and written in batches of set-based statements (a guild may
have 50,000 members), each change queued only if the member's version is still the one
read: a member whose state moved since got its role change from that transition.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from domain.lifecycle import State
from domain.persistence.role_drift import RoleDriftStore, RoleFix, StoredRole
from domain.transitions import role_action_for, role_wanted

log = logging.getLogger(__name__)

# Members per read and write statement: 50,000 members are ten rounds of two statements.
BATCH = 5000

# The states a move out of `verified` into takes the role away (a leave does not: the role
# goes with the member). From the same rule as the transitions' own role changes.
DEMOTED_TO = tuple(s for s in State if role_action_for(State.VERIFIED, s) == "remove")


class Verdict(enum.Enum):
    GRANT = "grant"
    REMOVE = "remove"
    RIGHT = "right"  # Discord shows what the state calls for
    HUMAN = "human"  # holds the role, never verified then demoted by Lifeline: left alone
    UNTRACKED = "untracked"  # no stored record (or a stored exit state): nothing to decide
    QUEUED = "queued"  # a role change of the member is still being delivered


def verdict(stored: StoredRole, holds_role: bool) -> Verdict:
    """What the repair does for one member present in the guild."""
    wanted = role_wanted(stored.state)
    if wanted is None:
        return Verdict.UNTRACKED
    if wanted == holds_role:
        return Verdict.RIGHT
    if stored.delivery_open:
        # The queued change (a transition's or an earlier repair's) settles it; another
        # row would only repeat it.
        return Verdict.QUEUED
    if wanted:
        return Verdict.GRANT
    return Verdict.REMOVE if stored.left_verified else Verdict.HUMAN


@dataclass
class RepairCounts:
    granted: int = 0
    removed: int = 0
    already_right: int = 0
    left_alone: int = 0  # hold the role without Lifeline having verified them
    waiting: int = 0  # a role change already queued for them
    untracked: int = 0  # present, but no stored state to go by
    moved_on: int = 0  # changed state between the read and the write: their transition did

    @property
    def changed(self) -> int:
        return self.granted + self.removed

    def summary(self) -> str:
        text = (f"granted {self.granted}, removed {self.removed}, "
                f"already right {self.already_right}")
        extra = [f"{n} {what}" for n, what in (
            (self.left_alone, "left alone (hold the role, never verified by Lifeline)"),
            (self.waiting, "waiting for a role change already queued"),
            (self.moved_on, "changed state meanwhile"),
            (self.untracked, "not known to Lifeline yet")) if n]
        return text + ("; " + ", ".join(extra) if extra else "")


class RoleDriftRepair:
    def __init__(self, store: RoleDriftStore) -> None:
        self.store = store

    async def repair(self, guild_id: int, role_id: int,
                     members: Sequence[tuple[int, bool]]) -> RepairCounts:
        """`members`: every member present (bots excluded) and whether Discord shows them
        holding `role_id`, the guild's verified role. Queues the grants and removals the
        stored states call for; answers what it did."""
        counts = RepairCounts()
        for start in range(0, len(members), BATCH):
            chunk = members[start:start + BATCH]
            holds = dict(chunk)
            stored = await self.store.read(guild_id, [u for u, _ in chunk], DEMOTED_TO)
            fixes: list[RoleFix] = []
            for member in stored:
                found = verdict(member, holds[member.user_id])
                if found is Verdict.GRANT or found is Verdict.REMOVE:
                    fixes.append(RoleFix(member.user_id,
                                         "add" if found is Verdict.GRANT else "remove",
                                         member.version))
                elif found is Verdict.RIGHT:
                    counts.already_right += 1
                elif found is Verdict.HUMAN:
                    counts.left_alone += 1
                elif found is Verdict.QUEUED:
                    counts.waiting += 1
                else:
                    counts.untracked += 1
            if not fixes:
                continue
            queued = await self.store.queue(guild_id, role_id, fixes)
            counts.granted += sum(1 for action in queued.values() if action == "add")
            counts.removed += sum(1 for action in queued.values() if action == "remove")
            counts.moved_on += len(fixes) - len(queued)
        log.info("role repair of guild %s: %s", guild_id, counts.summary())
        return counts
