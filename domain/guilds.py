"""Per-guild configuration set by `/lifeline setup`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from domain.commands import check_snowflake
from domain.errors import GuildNotSetUp, InvalidInput
from domain.persistence.database import Database
from domain.persistence.tables import MirrorLevel

MAX_STAFF_ROLES = 25


@dataclass(frozen=True)
class GuildConfig:
    guild_id: int
    log_channel_id: int | None
    staff_role_ids: tuple[int, ...]
    verified_role_id: int | None
    eligibility_role_id: int | None
    mirror_level: MirrorLevel


@dataclass(frozen=True)
class DeliveryHealth:
    pending: int
    dead_lettered: int
    last_error: str | None


class GuildSettingsService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, guild_id: int) -> GuildConfig | None:
        async with self.db.autocommit() as conn:
            row = (await conn.execute(text(
                "SELECT * FROM guild_settings WHERE guild_id = :g"), {"g": guild_id})).first()
        if row is None:
            return None
        return GuildConfig(row.guild_id, row.log_channel_id, tuple(row.staff_role_ids or ()),
                           row.verified_role_id, row.eligibility_role_id,
                           MirrorLevel(row.mirror_level))

    async def require(self, guild_id: int) -> GuildConfig:
        config = await self.get(guild_id)
        if config is None:
            raise GuildNotSetUp("this server is not set up for Lifeline yet: a member with "
                                "Manage Server runs /lifeline setup first")
        return config

    async def setup(self, guild_id: int, *, log_channel_id: int | None,
                    staff_role_ids: list[int], verified_role_id: int | None,
                    eligibility_role_id: int | None, mirror_level: str) -> GuildConfig:
        check_snowflake("guild_id", guild_id)
        for name, value in (("log_channel_id", log_channel_id),
                            ("verified_role_id", verified_role_id),
                            ("eligibility_role_id", eligibility_role_id)):
            if value is not None:
                check_snowflake(name, value)
        if len(staff_role_ids) > MAX_STAFF_ROLES:
            raise InvalidInput(f"at most {MAX_STAFF_ROLES} staff roles")
        for role in staff_role_ids:
            check_snowflake("staff_role_ids", role)
        try:
            level = MirrorLevel(mirror_level)
        except ValueError:
            raise InvalidInput("mirror_level must be one of: "
                               + ", ".join(m.value for m in MirrorLevel)) from None
        async with self.db.transaction() as conn:
            await conn.execute(text(
                """INSERT INTO guild_settings (guild_id, log_channel_id, staff_role_ids,
                       verified_role_id, eligibility_role_id, mirror_level)
                   VALUES (:g, :log, :staff, :verified, :eligibility,
                           CAST(:level AS mirror_level))
                   ON CONFLICT (guild_id) DO UPDATE SET
                       log_channel_id = EXCLUDED.log_channel_id,
                       staff_role_ids = EXCLUDED.staff_role_ids,
                       verified_role_id = EXCLUDED.verified_role_id,
                       eligibility_role_id = EXCLUDED.eligibility_role_id,
                       mirror_level = EXCLUDED.mirror_level, updated_at = now()"""),
                {"g": guild_id, "log": log_channel_id, "staff": list(dict.fromkeys(staff_role_ids)),
                 "verified": verified_role_id, "eligibility": eligibility_role_id,
                 "level": level.value})
        config = await self.get(guild_id)
        assert config is not None
        return config

    async def delivery_problems(self, guild_id: int) -> DeliveryHealth:
        """Outbox health of one guild, for `/lifeline status`: failures since the last
        `/lifeline setup` (which is how staff fix a deleted channel or a lost permission)."""
        async with self.db.autocommit() as conn:
            row = (await conn.execute(text(
                """SELECT count(*) FILTER (WHERE o.status IN ('pending', 'retry_scheduled',
                                                         'delivering')) AS pending,
                          count(*) FILTER (WHERE o.status IN ('dead_lettered', 'failed')
                                           AND o.updated_at > gs.updated_at) AS dead,
                          (SELECT last_error FROM outbox o2 WHERE o2.guild_id = :g
                             AND o2.status IN ('dead_lettered', 'failed')
                             AND o2.updated_at > gs.updated_at
                             ORDER BY o2.id DESC LIMIT 1) AS last_error
                   FROM guild_settings gs LEFT JOIN outbox o ON o.guild_id = gs.guild_id
                   WHERE gs.guild_id = :g
                   GROUP BY gs.updated_at"""), {"g": guild_id})).first()
        if row is None:
            return DeliveryHealth(0, 0, None)
        return DeliveryHealth(int(row.pending), int(row.dead), row.last_error)
