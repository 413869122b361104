"""The verified role as Discord shows it (discord.py's member cache), for role drift repair:
at reconcile, on `/lifeline repair` and on `/lifeline status repair:True`. The decision and
the SQL are the domain's (domain/role_drift.py)."""

from __future__ import annotations

import asyncio
import logging

import discord

from domain.errors import DomainError, GuildNotSetUp
from domain.records import GuildConfig
from domain.role_drift import RepairCounts, RoleDriftRepair

log = logging.getLogger(__name__)


class VerifiedRoleGone(DomainError):
    code = "verified_role_gone"


async def role_holdings(guild: discord.Guild, role_id: int) -> list[tuple[int, bool]]:
    """Every member present but bots, and whether they hold `role_id`."""
    held: list[tuple[int, bool]] = []
    for n, member in enumerate(guild.members):
        if n % 2000 == 1999:
            await asyncio.sleep(0)  # a big guild: let the gateway and staff commands in
        if not member.bot:
            held.append((member.id, member.get_role(role_id) is not None))
    return held


async def repair_roles(guild: discord.Guild, config: GuildConfig | None,
                       repair: RoleDriftRepair) -> RepairCounts:
    """Queue the verified role's grants and removals the stored states call for; raises
    a DomainError (a sentence for staff) when there is no verified role to repair."""
    if config is None or config.verified_role_id is None:
        raise GuildNotSetUp("no verified role is set up: a member with Manage Server runs "
                            "/lifeline setup first")
    role_id = config.verified_role_id
    if guild.get_role(role_id) is None:
        # Every verified member would get a grant Discord refuses (unknown role).
        raise VerifiedRoleGone("the verified role no longer exists: run /lifeline setup "
                               "with the role to use")
    return await repair.repair(guild.id, role_id, await role_holdings(guild, role_id))
