"""The application services one process runs, as one typed set.

The composition root (bot/wiring.py: `build_services`) builds it from settings and a
database; cogs, the HTTP API, the CLI, the demo, the tests and the bench receive it. It
lives in the domain so that cogs can name it without importing `bot`.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.audit import AuditReads
from domain.bulk_jobs import BulkJobs
from domain.deliveries import DeliveryService
from domain.guilds import GuildSettingsService
from domain.ingest.applier import BatchApplier
from domain.metrics import Metrics
from domain.overview import OverviewService
from domain.persistence.stores import Stores
from domain.remediation import RemediationService
from domain.role_drift import RoleDriftRepair
from domain.sync import MemberSync
from domain.transitions import TransitionService


@dataclass(frozen=True)
class Services:
    stores: Stores
    metrics: Metrics
    transitions: TransitionService  # the gateway's and the web app's writes
    # Staff commands' writes and reads, on the interactive pool when there is one (the same
    # single-flight turns as `transitions`).
    staff_transitions: TransitionService
    remediation: RemediationService
    guilds: GuildSettingsService
    sync: MemberSync  # brings a member to what Discord shows (gateway updates, reconcile)
    batches: BatchApplier  # many members' operations and syncs per statement (ingest)
    role_drift: RoleDriftRepair  # the verified role back to what stored states call for
    deliveries: DeliveryService  # failed side effects: what staff see and retry
    audit: AuditReads  # the remediation audit trail of dead letters and deliveries
    bulk_jobs: BulkJobs  # console bulk retries, their progress kept in PostgreSQL
    overview: OverviewService  # the console overview's numbers and their snapshots
