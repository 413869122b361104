"""The batched write path and the ingest workers' bot path, through PgBouncer in
transaction mode (unnested arrays with enum casts and no prepared-statement cache)."""

from tests.bot.test_lifecycle import (  # noqa: F401
    test_a_held_worker_does_not_stop_the_others,
    test_bunched_updates_of_many_members_leave_each_as_discord_shows_them,
)
from tests.ingest.test_applier import (  # noqa: F401
    test_a_batch_writes_exactly_the_rows_of_the_single_path,
    test_a_member_that_loses_its_compare_and_set_is_finished_on_the_single_path,
    test_syncs_and_repeats_in_batches,
)
