"""A delivery's timeline is its newest attempts, bounded (a log line refused for days gains
hundreds), read in one guild-scoped query for a whole page, with word of earlier ones."""

from __future__ import annotations

from domain.lifecycle import Source
from tests.delivery_support import refuse_role_order, refused_grant
from tests.helpers import GUILD, OTHER_GUILD, STAFF
from tests.wiring import ProcessServices


async def test_timelines_hold_the_newest_attempts_and_say_when_earlier_ones_exist(
        services: ProcessServices) -> None:
    _, many = await refused_grant(services)
    for _ in range(4):  # staff retry, Discord refuses again: 5 attempts, each "#1"
        await services.services.deliveries.retry(GUILD, many, STAFF, Source.STAFF)
        assert await refuse_role_order(services) == 1
    _, one = await refused_grant(services)
    store = services.stores.deliveries
    full = (await store.attempts(GUILD, [many], 100))[many]
    assert len(full.attempts) == 5 and not full.earlier
    assert [a.started_at for a in full.attempts] == sorted(a.started_at for a in full.attempts)

    page = await store.attempts(GUILD, [many, one], 3)
    assert page[many].attempts == full.attempts[-3:] and page[many].earlier
    assert len(page[one].attempts) == 1 and not page[one].earlier
    exact = (await store.attempts(GUILD, [many], 5))[many]
    assert exact.attempts == full.attempts and not exact.earlier
    # Another guild's view of these ids: nothing.
    other = await store.attempts(OTHER_GUILD, [many, one], 100)
    assert all(t.attempts == [] and not t.earlier for t in other.values())
