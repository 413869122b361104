"""`/lifeline setup` (Manage Server), `/lifeline status` and `/lifeline repair` (staff).

Setup and status check what Lifeline needs from Discord (cogs/setup_checks.py); repair and
`status repair:True` bring the verified role back to what the stored states call for
(cogs/roles.py, domain/role_drift.py). Each of these is its own part of the answer.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common import (
    GUILD_ONLY,
    acknowledge,
    answer,
    delivery_notice,
    guild_id_of,
    on_command_error,
    require_staff,
)
from cogs.roles import repair_roles
from cogs.setup_checks import setup_section
from domain.deliveries import describe
from domain.errors import DomainError
from domain.ingest.pipeline import Ingestion
from domain.records import GuildConfig
from domain.services import Services
from domain.vocabulary import MirrorLevel

Interaction = discord.Interaction[Any]

log = logging.getLogger(__name__)

LEVEL_CHOICES = [
    app_commands.Choice(name="remediation actions only", value=MirrorLevel.REMEDIATION.value),
    app_commands.Choice(name="remediation + new dead letters",
                        value=MirrorLevel.DEAD_LETTERS.value),
    app_commands.Choice(name="everything, every transition too", value=MirrorLevel.ALL.value),
]


class GuildSetupCog(commands.Cog):
    lifeline = app_commands.Group(name="lifeline", description="Set up and check Lifeline",
                                  guild_only=True, allowed_contexts=GUILD_ONLY,
                                  default_permissions=discord.Permissions(manage_guild=True))

    def __init__(self, services: Services) -> None:
        self.guilds = services.guilds
        self.remediation = services.remediation
        self.role_drift = services.role_drift
        self.deliveries = services.deliveries

    async def interaction_check(self, interaction: Interaction) -> bool:
        return await acknowledge(interaction)

    async def cog_app_command_error(self, interaction: Interaction,
                                    error: app_commands.AppCommandError) -> None:
        await on_command_error(interaction, error)

    @lifeline.command(name="setup", description="Log channel, staff roles, verified role")
    @app_commands.describe(log_channel="where remediation is mirrored for ops",
                           verified_role="granted on verification, removed when it ends",
                           staff_role="may use /dlq and /member (Manage Server always may)",
                           eligibility_role="optional: holding it makes a member eligible",
                           mirror_level="what the log channel shows")
    @app_commands.choices(mirror_level=LEVEL_CHOICES)
    async def setup(self, interaction: Interaction, log_channel: discord.TextChannel,
                    verified_role: discord.Role, staff_role: discord.Role | None = None,
                    staff_role_2: discord.Role | None = None,
                    eligibility_role: discord.Role | None = None,
                    mirror_level: app_commands.Choice[str] | None = None) -> None:
        if not interaction.permissions.manage_guild:
            await answer(interaction, "❌ /lifeline setup needs the Manage Server permission")
            return
        staff = [r.id for r in (staff_role, staff_role_2) if r is not None]
        config = await self.guilds.setup(
            guild_id_of(interaction), log_channel_id=log_channel.id, staff_role_ids=staff,
            verified_role_id=verified_role.id,
            eligibility_role_id=eligibility_role.id if eligibility_role else None,
            mirror_level=(mirror_level.value if mirror_level
                          else MirrorLevel.DEAD_LETTERS.value))
        text = "✅ Lifeline is set up.\n" + _describe(config)
        if config.staff_role_ids:
            text += STAFF_ROLES_HINT
        # Saved either way (staff may fix Discord afterwards); what is missing, said now.
        checks = setup_section(interaction.guild, config.log_channel_id,
                               config.verified_role_id)
        await answer(interaction, "\n\n".join([text, *(["\n".join(checks)] if checks else [])]))

    @lifeline.command(name="status", description="Settings, open dead letters, delivery health")
    @app_commands.describe(repair="also give and take the verified role where Discord "
                                  "drifted from the members' states")
    async def status(self, interaction: Interaction, repair: bool = False) -> None:
        config = await require_staff(interaction, self.guilds)
        guild_id = guild_id_of(interaction)
        stats = await self.remediation.stats(guild_id, top=3)
        deliveries = await self.deliveries.summary(guild_id)
        delivery_notice(interaction)  # said below in full, not as the notice too
        lines = [_describe(config),
                 "Dead letters: " + ", ".join(f"{k} {v}" for k, v in stats.by_status.items())]
        if stats.oldest_open_age_seconds is not None:
            lines.append(f"Oldest open entry: {int(stats.oldest_open_age_seconds)}s old")
        lines.append(f"Deliveries pending: {deliveries.pending}")
        lines.extend(_ingest_lines(interaction.client))
        if deliveries.failed:
            channel = f"<#{deliveries.newest_channel_id}>" if deliveries.newest_channel_id \
                else "the log channel"
            lines.append(f"⚠️ {deliveries.failed} deliveries could not be made; the newest: "
                         f"{describe(deliveries.newest_cause, channel)} (`/dlq deliveries` "
                         "shows them; fix the cause, then `/dlq deliveries-retry`)")
        parts = ["\n".join(lines)]
        # Separate parts, each under its own heading: the Discord checks, the repair.
        checks = setup_section(interaction.guild, config.log_channel_id,
                               config.verified_role_id)
        if checks:
            parts.append("\n".join(checks))
        if repair:
            try:
                parts.append(await self._repair(interaction, config))
            except DomainError as exc:  # the rest of the status still stands
                parts.append(f"**Role repair**: not run: {exc}")
        await answer(interaction, "\n\n".join(parts))

    @lifeline.command(name="repair",
                      description="Give and take the verified role where Discord drifted "
                                  "from the members' states")
    async def repair(self, interaction: Interaction) -> None:
        config = await require_staff(interaction, self.guilds)
        await answer(interaction, await self._repair(interaction, config))

    async def _repair(self, interaction: Interaction, config: GuildConfig) -> str:
        guild = interaction.guild
        if guild is None:
            raise app_commands.NoPrivateMessage()
        counts = await repair_roles(guild, config, self.role_drift)
        log.info("role repair in guild %s asked by %s: %s", guild.id, interaction.user.id,
                 counts.summary())
        text = f"**Role repair**: {counts.summary()}"
        if counts.changed:
            text += " (the changes are on their way through the outbox)"
        if counts.left_alone:
            text += ("\nℹ️ A member who holds the verified role without Lifeline having "
                     "verified them got it from a person: Lifeline leaves it alone.")
        return text


# Discord shows `/member`, `/dlq` and `/lifeline` only to members with Manage Server (their
# default permissions); a bot cannot change who sees them. Lifeline checks the staff roles
# on every command itself, but the admin must let those roles see the commands.
STAFF_ROLES_HINT = ("\nℹ️ For the staff roles to see `/member`, `/dlq` and `/lifeline`: Server "
                    "Settings → Integrations → Lifeline, add the roles to each command (a bot "
                    "cannot do this itself; Lifeline still checks the roles on every command).")


def _ingest_lines(client: discord.Client) -> list[str]:
    """The gateway ingest pipeline of this process (for every guild it serves)."""
    cog = client.get_cog("LifecycleCog") if isinstance(client, commands.Bot) else None
    ingestion = getattr(cog, "ingestion", None)
    if not isinstance(ingestion, Ingestion):
        return []
    status = ingestion.status()
    lines = [f"Gateway events waiting: {status.backlog} (oldest {status.lag_seconds:.1f}s)"]
    if status.dropped:
        lines.append(f"⚠️ {status.dropped} gateway events were dropped since start: the "
                     f"ingest log was full ({status.log_bytes} of {status.max_bytes} bytes); "
                     f"{status.guilds_to_reconcile} guild(s) wait for a full reconcile")
    if status.failed:
        lines.append(f"⚠️ {status.failed} gateway events or members could not be applied nor "
                     "kept as dead letters since start (see the bot's log); their servers "
                     "are reconciled")
    return lines


def _describe(config: Any) -> str:
    staff = ", ".join(f"<@&{r}>" for r in config.staff_role_ids) or "(Manage Server only)"
    eligibility = f"<@&{config.eligibility_role_id}>" if config.eligibility_role_id \
        else "(none: automatic)"
    return (f"Log channel: <#{config.log_channel_id}>\nStaff roles: {staff}\n"
            f"Verified role: <@&{config.verified_role_id}>\nEligibility role: {eligibility}\n"
            f"Mirror level: {config.mirror_level.value}")
