"""Per-guild configuration set by `/lifeline setup`."""

from __future__ import annotations

from domain.commands import check_snowflake
from domain.errors import GuildNotSetUp, InvalidInput
from domain.persistence.deliveries import DeliveryStore
from domain.persistence.guilds import GuildStore
from domain.records import GuildConfig
from domain.vocabulary import MirrorLevel

MAX_STAFF_ROLES = 25


class GuildSettingsService:
    def __init__(self, store: GuildStore, deliveries: DeliveryStore | None = None) -> None:
        self.store = store
        self.deliveries = deliveries

    async def get(self, guild_id: int) -> GuildConfig | None:
        return await self.store.get(guild_id)

    async def set_up_ids(self) -> list[int]:
        return await self.store.set_up_ids()

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
        await self.store.save(GuildConfig(guild_id, log_channel_id,
                                          tuple(dict.fromkeys(staff_role_ids)),
                                          verified_role_id, eligibility_role_id, level))
        config = await self.get(guild_id)
        assert config is not None
        return config

    async def failed_deliveries(self, guild_id: int) -> int:
        """How many of the guild's deliveries failed and wait for staff: the notice on
        staff answers (a broken log channel cannot report itself)."""
        if self.deliveries is None:
            return 0
        return await self.deliveries.failed_count(guild_id)
