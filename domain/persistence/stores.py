"""Every store of one process, built over one database (or two: see `open_stores`)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.persistence.audit import AuditStore
from domain.persistence.bulk_jobs import BulkJobStore
from domain.persistence.console_sessions import ConsoleSessionStore
from domain.persistence.database import Database
from domain.persistence.dead_letters import DeadLetterStore
from domain.persistence.deliveries import DeliveryStore
from domain.persistence.faults import Faults
from domain.persistence.guilds import GuildStore
from domain.persistence.members import MemberStore
from domain.persistence.ops import OpsStore
from domain.persistence.outbox import OutboxStore
from domain.persistence.overview import OverviewStore
from domain.persistence.role_drift import RoleDriftStore


@dataclass(frozen=True)
class Stores:
    members: MemberStore  # members and their ledger: the transition hot path
    # The same tables for what staff wait on (their commands' reads and writes).
    staff_members: MemberStore
    dead_letters: DeadLetterStore  # dead letters, their counts, the remediation audit
    # The same tables on the write path's pool: where failed transitions are recorded.
    dead_letter_writes: DeadLetterStore
    outbox: OutboxStore  # side effects to deliver, and their attempts
    deliveries: DeliveryStore  # the outbox as staff see it: failed deliveries, their retry
    guilds: GuildStore  # guild settings
    ops: OpsStore  # what probes, metrics and operators read
    role_drift: RoleDriftStore  # the verified role's repair: member reads, role rows queued
    audit: AuditStore  # reading the remediation audit trail (staff pool)
    console_sessions: ConsoleSessionStore  # the staff web console's logins (staff pool)
    bulk_jobs: BulkJobStore  # console bulk retries and their progress (staff pool)
    overview: OverviewStore  # the console overview's snapshots (staff pool)
    faults: Faults | None = None  # the test seam; None in production


def open_stores(db: Database, *, interactive: Database | None = None,
                faults: Faults | None = None) -> Stores:
    """The stores over `db`. With `interactive`, what staff wait on (their commands' member
    reads and writes, dead-letter pages and remediation, guild settings, probes) runs on that
    second pool, so a backlog of gateway writes on `db` never makes a staff command wait
    for a connection; the gateway's and the web app's write path (members, the dead letters
    of failed transitions, the outbox) stays on `db`."""
    staff = interactive or db
    dead_letters = DeadLetterStore(staff, faults)
    members = MemberStore(db, faults)
    return Stores(members=members,
                  staff_members=members if staff is db else MemberStore(staff, faults),
                  dead_letters=dead_letters,
                  dead_letter_writes=dead_letters if staff is db
                  else DeadLetterStore(db, faults),
                  outbox=OutboxStore(db, faults), deliveries=DeliveryStore(staff, faults),
                  guilds=GuildStore(staff, faults), ops=OpsStore(staff, faults),
                  role_drift=RoleDriftStore(db), audit=AuditStore(staff),
                  console_sessions=ConsoleSessionStore(staff),
                  bulk_jobs=BulkJobStore(staff), overview=OverviewStore(staff),
                  faults=faults)
