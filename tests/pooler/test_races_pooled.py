"""The race tests, through PgBouncer in transaction mode (tests/pooler/conftest.py)."""

from tests.integration.test_races import (  # noqa: F401
    test_four_processes_two_hundred_transitions_over_ten_members,
    test_twenty_concurrent_writers_on_one_member_lose_no_update,
    test_two_writers_verify_and_leave_at_once_exactly_one_wins_per_step,
)
