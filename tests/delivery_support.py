"""Failed deliveries for the tests of their doors (API, CLI)."""

from __future__ import annotations

from sqlalchemy import text

from domain.lifecycle import State
from domain.metrics import CountingMetrics
from domain.outbox import DeliveryError, OutboxWorker, WorkerPolicy
from domain.vocabulary import DeliveryCause
from tests.helpers import GUILD, drive, next_user
from tests.integration.test_outbox import RecordingDiscord
from tests.wiring import ProcessServices

ROLE = 880001


async def refused_grant(services: ProcessServices, guild: int = GUILD) -> tuple[int, int]:
    """A verified member whose role grant Discord refused (the role order): (user, D id)."""
    async with services.db.transaction() as conn:
        await conn.execute(text(
            "INSERT INTO guild_settings (guild_id, verified_role_id) VALUES (:g, :r) "
            "ON CONFLICT (guild_id) DO NOTHING"), {"g": guild, "r": ROLE})
    user = next_user()
    await drive(services, user, State.VERIFIED, guild)
    assert await refuse_role_order(services) == 1
    async with services.db.autocommit() as conn:
        delivery = (await conn.execute(text(
            "SELECT id FROM outbox WHERE guild_id = :g AND payload->>'user_id' = :u"),
            {"g": guild, "u": str(user)})).scalar_one()
    return user, delivery


async def refuse_role_order(services: ProcessServices) -> int:
    """One worker round in which Discord refuses the first delivery for the role order:
    how many rows the round took."""
    discord = RecordingDiscord()
    discord.fail_next = [DeliveryError("403 Forbidden (code 50013): Missing Permissions",
                                       status=403, retryable=False, code=50013,
                                       cause=DeliveryCause.ROLE_BELOW)]
    worker = OutboxWorker(services.services.stores.outbox, discord, CountingMetrics(),
                          WorkerPolicy())
    return await worker.run_once()
