"""GuildStore: each guild's settings, as `/lifeline setup` left them."""

from __future__ import annotations

from sqlalchemy import text

from domain.persistence.database import Database
from domain.persistence.faults import Faults, Point
from domain.records import GuildConfig
from domain.vocabulary import MirrorLevel

GET = text("SELECT * FROM guild_settings WHERE guild_id = :g")
SET_UP_IDS = text("SELECT guild_id FROM guild_settings ORDER BY guild_id")
UPSERT = text(
    """INSERT INTO guild_settings (guild_id, log_channel_id, staff_role_ids,
           verified_role_id, eligibility_role_id, mirror_level)
       VALUES (:g, :log, :staff, :verified, :eligibility, CAST(:level AS mirror_level))
       ON CONFLICT (guild_id) DO UPDATE SET
           log_channel_id = EXCLUDED.log_channel_id,
           staff_role_ids = EXCLUDED.staff_role_ids,
           verified_role_id = EXCLUDED.verified_role_id,
           eligibility_role_id = EXCLUDED.eligibility_role_id,
           mirror_level = EXCLUDED.mirror_level, updated_at = now()""")


class GuildStore:
    def __init__(self, db: Database, faults: Faults | None = None) -> None:
        self.db = db
        self.faults = faults

    async def get(self, guild_id: int) -> GuildConfig | None:
        async with self.db.autocommit() as conn:
            if self.faults is not None:
                await self.faults.enter(Point.GUILDS_READ, conn, guild_id=guild_id)
            row = (await conn.execute(GET, {"g": guild_id})).first()
        if row is None:
            return None
        return GuildConfig(row.guild_id, row.log_channel_id, tuple(row.staff_role_ids or ()),
                           row.verified_role_id, row.eligibility_role_id,
                           MirrorLevel(row.mirror_level))

    async def set_up_ids(self) -> list[int]:
        """Every guild with settings (Lifeline is set up there)."""
        async with self.db.autocommit() as conn:
            return list((await conn.execute(SET_UP_IDS)).scalars())

    async def save(self, config: GuildConfig) -> None:
        """Creates or replaces the guild's settings."""
        async with self.db.transaction() as conn:
            await conn.execute(UPSERT, {
                "g": config.guild_id, "log": config.log_channel_id,
                "staff": list(config.staff_role_ids), "verified": config.verified_role_id,
                "eligibility": config.eligibility_role_id, "level": config.mirror_level.value})
