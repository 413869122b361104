"""Slash command groups shared by more than one module of commands."""

from __future__ import annotations

import discord
from discord import app_commands

from cogs.common import GUILD_ONLY

# `/dlq`: dead letters (cogs/dlq.py) and failed deliveries (cogs/dlq_deliveries.py), one
# group in Discord. Each cog instance gets its own copy, bound to it.
DLQ = app_commands.Group(name="dlq", description="Staff: failed lifecycle writes and "
                                                 "deliveries",
                         guild_only=True, allowed_contexts=GUILD_ONLY,
                         default_permissions=discord.Permissions(manage_guild=True))
