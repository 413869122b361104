"""Remediation races and dead-letter pages, through PgBouncer in transaction mode."""

from tests.integration.test_remediation import (  # noqa: F401
    test_open_entries_are_listed_newest_first_with_keyset_pages,
    test_retry_group_replays_every_open_entry_of_a_signature,
    test_two_actors_retrying_one_entry_at_once_replay_it_once,
)
