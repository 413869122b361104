"""The one wiring function: the services of a process, from its settings and database.

The bot, the HTTP API, the CLI, the demo, the tests and the bench all build their
services here, so they run the same parts with the same policies.
"""

from __future__ import annotations

from bot.prometheus import PrometheusMetrics
from bot.settings import Settings
from domain.audit import AuditReads
from domain.bulk_jobs import BulkJobs
from domain.deadletters import DeadLetterRecorder
from domain.deliveries import DeliveryService
from domain.guilds import GuildSettingsService
from domain.ingest.applier import BatchApplier
from domain.metrics import Metrics
from domain.overview import OverviewService
from domain.persistence.database import Database
from domain.persistence.faults import Faults
from domain.persistence.stores import open_stores
from domain.remediation import RemediationService
from domain.role_drift import RoleDriftRepair
from domain.services import Services
from domain.sync import MemberSync
from domain.transitions import RetryPolicy, TransitionService


def build_services(settings: Settings, db: Database, *, metrics: Metrics | None = None,
                   faults: Faults | None = None, interactive: Database | None = None
                   ) -> Services:
    """The services over `db`: Prometheus counters unless `metrics` is given; `faults` is
    the test seam (None in production); `interactive` is an optional second pool for what
    staff wait on (see domain.persistence.stores.open_stores)."""
    stores = open_stores(db, interactive=interactive, faults=faults)
    counters = metrics if metrics is not None else PrometheusMetrics()
    policy = RetryPolicy(settings.transition_max_attempts,
                         settings.transition_backoff_initial_seconds,
                         settings.transition_backoff_max_seconds)
    transitions = TransitionService(stores.members, DeadLetterRecorder(stores.dead_letter_writes),
                                    policy, counters)
    staff_transitions = transitions if stores.staff_members is stores.members else \
        TransitionService(stores.staff_members, DeadLetterRecorder(stores.dead_letters),
                          policy, counters, turns=transitions.turns)
    remediation = RemediationService(stores.dead_letters, staff_transitions,
                                     retention_days=settings.retention_days, metrics=counters,
                                     claim_seconds=settings.dead_letter_claim_seconds,
                                     audit=stores.audit)
    guilds = GuildSettingsService(stores.guilds, stores.deliveries)
    member_sync = MemberSync(transitions)
    return Services(stores, counters, transitions, staff_transitions, remediation, guilds,
                    member_sync, BatchApplier(stores.members, transitions, member_sync,
                                              counters),
                    RoleDriftRepair(stores.role_drift),
                    deliveries=DeliveryService(stores.deliveries),
                    audit=AuditReads(stores.audit),
                    bulk_jobs=BulkJobs(stores.bulk_jobs, remediation),
                    overview=OverviewService(stores.overview))
