"""What every cog needs: staff checks, ephemeral answers, domain errors as text."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from domain.errors import DatabaseUnavailable, DomainError
from domain.guilds import GuildSettingsService
from domain.persistence.database import is_unavailable
from domain.records import GuildConfig

log = logging.getLogger(__name__)

# Lifeline's commands exist in servers only: declared as Discord's interaction contexts
# (`contexts: [0]`), not only with the deprecated dm_permission discord.py still sends.
GUILD_ONLY = app_commands.AppCommandContext(guild=True, dm_channel=False, private_channel=False)


class NotStaff(app_commands.CheckFailure):
    pass


def guild_id_of(interaction: discord.Interaction[Any]) -> int:
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    return interaction.guild_id


def is_staff(interaction: discord.Interaction[Any], config: GuildConfig | None) -> bool:
    """Staff = Manage Server, or one of the guild's configured staff roles.

    Checked by the bot on every staff command: `default_permissions` is only a hint that a
    guild admin can override for anyone.
    """
    if interaction.permissions.manage_guild:
        return True
    user = interaction.user
    if config is None or not isinstance(user, discord.Member):
        return False
    return any(role.id in config.staff_role_ids for role in user.roles)


async def require_staff(interaction: discord.Interaction[Any],
                        guilds: GuildSettingsService) -> GuildConfig:
    """The guild's config if the user is staff; else a refusal (no trace but a log line)."""
    guild_id = guild_id_of(interaction)
    config = await guilds.require(guild_id)
    if not is_staff(interaction, config):
        log.info("refused %s for user %s in guild %s: not staff",
                 interaction.command.qualified_name if interaction.command else "?",
                 interaction.user.id, guild_id)
        raise NotStaff("this command is for staff (a staff role or Manage Server)")
    # A broken log channel cannot say so itself: staff answers carry a notice instead.
    interaction.extras[FAILED_DELIVERIES] = await guilds.failed_deliveries(guild_id)
    return config


FAILED_DELIVERIES = "lifeline_failed_deliveries"


def delivery_notice(interaction: discord.Interaction[Any]) -> str | None:
    """The one-line notice of the guild's failed deliveries, once per interaction."""
    failed = interaction.extras.pop(FAILED_DELIVERIES, 0)
    if not failed:
        return None
    return (f"⚠️ {failed} role change(s) or log line(s) could not be delivered: "
            "`/dlq deliveries` shows why and retries them")


async def acknowledge(interaction: discord.Interaction[Any]) -> bool:
    """Every command's first response, before any database work: an ephemeral "thinking"
    deferral, so the interaction never expires (Discord's 3 seconds) however long the
    answer takes behind a backlog. The answer follows through `answer`. Used as the cogs'
    `interaction_check`, which discord.py runs before a command's checks and options."""
    if interaction.type is discord.InteractionType.application_command \
            and not interaction.response.is_done():
        await interaction.response.defer(ephemeral=True, thinking=True)
    return True


async def answer(interaction: discord.Interaction[Any], content: str | None = None, *,
                 embed: discord.Embed | None = None, view: discord.ui.View | None = None
                 ) -> None:
    """An ephemeral answer, whether or not the interaction was already answered."""
    notice = delivery_notice(interaction)
    if notice is not None:
        content = f"{content}\n{notice}" if content else notice
    kwargs: dict[str, Any] = {"ephemeral": True,
                              "allowed_mentions": discord.AllowedMentions.none()}
    if embed is not None:
        kwargs["embed"] = embed
    if view is not None:
        kwargs["view"] = view
    if interaction.response.is_done():
        await interaction.followup.send(content or discord.utils.MISSING, **kwargs)
    else:
        await interaction.response.send_message(content, **kwargs)


async def on_command_error(interaction: discord.Interaction[Any],
                           error: app_commands.AppCommandError) -> None:
    """Every cog's `cog_app_command_error`: a clear ephemeral answer, never a silent fail."""
    original = getattr(error, "original", error)
    if isinstance(original, DomainError):
        text = str(original)
    elif is_unavailable(original):
        log.warning("command %s: database unavailable", interaction.command.qualified_name
                    if interaction.command else "?")
        text = str(DatabaseUnavailable())
    elif isinstance(error, NotStaff):
        text = str(error)
    elif isinstance(error, app_commands.NoPrivateMessage):
        text = "this command works only in a server"
    elif isinstance(error, app_commands.CheckFailure | app_commands.TransformerError):
        text = str(error)
    else:
        log.error("command %s failed", interaction.command.qualified_name
                  if interaction.command else "?", exc_info=original)
        text = "something went wrong on our side; the error is logged"
    try:
        await answer(interaction, f"❌ {text}")
    except discord.HTTPException:
        log.warning("could not answer interaction %s", interaction.id)
