"""What API tests share: the token, a container over the test services, and real dead
letters made through the fault seam."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bot.container import Container
from domain.errors import TransitionDeadLettered
from domain.lifecycle import Operation
from tests.helpers import GUILD, cmd
from tests.wiring import ProcessServices

TOKEN = "test-api-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def build_container(services: ProcessServices, database_url: str) -> Container:
    """What open_container builds, over the test's services (fast retries, fault seam)."""
    settings = services.settings.model_copy(update={
        "api_token": SecretStr(TOKEN), "database_url": SecretStr(database_url)})
    return Container(settings, services.db, services.services)


def lose_every_write(services: ProcessServices) -> None:
    """Every compare-and-set of these services finds zero rows changed."""
    services.faults.lose_cas()


async def dead_letter(services: ProcessServices, user: int, op: Operation = Operation.VERIFY,
                      guild: int = GUILD) -> int:
    """A real dead letter (retries exhausted): every compare-and-set of this one write
    loses, through the services' fault seam."""
    services.faults.lose_cas(when=lambda hit: hit.user_id == user
                             and hit.operation == op.value)
    with pytest.raises(TransitionDeadLettered) as info:
        await services.transitions.apply(cmd(op, user, guild))
    services.faults.clear()
    return info.value.dead_letter_id
