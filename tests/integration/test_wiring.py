"""The one wiring function: a second pool for interactive work really carries it."""

from __future__ import annotations

import socket

import pytest

from bot.wiring import build_services
from domain.errors import DatabaseUnavailable
from domain.lifecycle import Operation
from domain.persistence.database import Database
from tests.helpers import GUILD, cmd, next_user
from tests.wiring import test_settings


async def test_staff_work_runs_on_the_interactive_pool(clean_db: Database) -> None:
    """With the main pool pointing at a server that is down, everything staff wait on still
    answers from the interactive pool, while the gateway write path (main pool) fails."""
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = Database(f"postgresql+asyncpg://nobody@127.0.0.1:{port}/none")
    try:
        services = build_services(test_settings(), down, interactive=clean_db)
        await services.guilds.setup(GUILD, log_channel_id=None, staff_role_ids=[],
                                    verified_role_id=None, eligibility_role_id=None,
                                    mirror_level="dead_letters")
        assert (await services.guilds.require(GUILD)).guild_id == GUILD
        page = await services.remediation.page(GUILD, status="open")
        assert page.items == [] and page.total == 0
        stats = await services.remediation.stats(GUILD)
        assert sum(stats.by_status.values()) == 0
        await services.stores.ops.ping()
        with pytest.raises(DatabaseUnavailable):
            await services.transitions.apply(cmd(Operation.JOIN, next_user()))
        # Failed transitions are recorded on the write path's pool, not the staff one.
        assert services.transitions.recorder.store.db is down
        assert services.remediation.store.db is clean_db
    finally:
        await down.dispose()


async def test_without_a_second_pool_everything_shares_one(clean_db: Database) -> None:
    services = build_services(test_settings(), clean_db)
    stores = services.stores
    pools = {stores.members.db, stores.staff_members.db, stores.dead_letters.db,
             stores.dead_letter_writes.db,
             stores.guilds.db, stores.ops.db, stores.outbox.db}
    assert pools == {clean_db}
