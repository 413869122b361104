"""The outbox: every outbound Discord write (log-channel mirror, role sync) is a row queued in
the same transaction as the fact it follows from, and delivered later by a worker.

- `port`: what the worker asks of the Discord edge (the `Deliverer`, implemented in bot/).
- `worker`: claim due lanes, deliver, record the attempt, retry with backoff, dead-letter.
- `retention`: purge closed dead letters and delivered rows past the retention.

The SQL is the OutboxStore's (domain/persistence/outbox.py); what a row looks like on
Discord (lines, embeds, limits, the nonce) is the edge's (bot/formatting.py).
"""

from domain.outbox.port import Deliverer, DeliveryError, Receipt
from domain.outbox.retention import purge_expired
from domain.outbox.worker import TAKEN_OVER, OutboxWorker, WorkerPolicy
from domain.records import Claimed

__all__ = ["TAKEN_OVER", "Claimed", "Deliverer", "DeliveryError", "OutboxWorker", "Receipt",
           "WorkerPolicy", "purge_expired"]
