"""Outbox claims and their takeover, through PgBouncer in transaction mode."""

from tests.integration.test_outbox import (  # noqa: F401
    test_a_claim_does_not_wait_for_rows_another_worker_holds,
    test_a_crashed_workers_claim_is_taken_over_and_not_posted_twice,
    test_three_workers_deliver_every_record_once_in_order_batched,
)
