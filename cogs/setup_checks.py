"""What Lifeline needs from Discord to do its work, checked against discord.py's cache.

Discord refuses a role change the bot has no right to (403, code 50013: Manage Roles
missing, or the role at or above the bot's highest role) and a log line in a channel it
cannot see, post in or embed in; the outbox then keeps failing. `/lifeline setup` checks
at once and `/lifeline status` again, and both say what is missing and how to fix it.
The check reads the cached guild (channel overwrites included, as Discord computes them:
`channel.permissions_for(guild.me)`); the wording is `describe`'s.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import discord

# In the log channel: see it, post in it, and post embeds (every log line is an embed).
CHANNEL_NEEDS = (("view_channel", "View Channel"), ("send_messages", "Send Messages"),
                 ("embed_links", "Embed Links"))


class Missing(enum.Enum):
    MANAGE_ROLES = "manage_roles"
    ROLE_GONE = "role_gone"
    ROLE_NOT_ASSIGNABLE = "role_not_assignable"  # @everyone, or managed by an integration
    ROLE_ABOVE_BOT = "role_above_bot"
    CHANNEL_GONE = "channel_gone"
    CHANNEL_PERMISSIONS = "channel_permissions"


@dataclass(frozen=True)
class SetupProblem:
    missing: Missing
    role: str = ""  # the verified role's name
    channel: str = ""  # the log channel's name
    permissions: tuple[str, ...] = ()  # channel permissions missing, as Discord names them


def setup_problems(guild: discord.Guild, log_channel_id: int | None,
                   verified_role_id: int | None) -> list[SetupProblem]:
    """Every problem, in the order an admin fixes them; [] when all is right."""
    me = guild.me
    problems: list[SetupProblem] = []
    if not me.guild_permissions.manage_roles:
        problems.append(SetupProblem(Missing.MANAGE_ROLES))
    if verified_role_id is not None:
        role = guild.get_role(verified_role_id)
        if role is None:
            problems.append(SetupProblem(Missing.ROLE_GONE))
        elif role.is_default() or role.managed:
            problems.append(SetupProblem(Missing.ROLE_NOT_ASSIGNABLE, role=role.name))
        elif guild.owner_id != me.id and not me.top_role > role:
            problems.append(SetupProblem(Missing.ROLE_ABOVE_BOT, role=role.name))
    if log_channel_id is not None:
        channel = guild.get_channel(log_channel_id)
        if channel is None:
            problems.append(SetupProblem(Missing.CHANNEL_GONE))
        else:
            allowed = channel.permissions_for(me)
            lacking = tuple(name for flag, name in CHANNEL_NEEDS if not getattr(allowed, flag))
            if lacking:
                problems.append(SetupProblem(Missing.CHANNEL_PERMISSIONS, channel=channel.name,
                                             permissions=lacking))
    return problems


def describe(problem: SetupProblem) -> str:
    """One problem and its fix, in words an admin acts on."""
    match problem.missing:
        case Missing.MANAGE_ROLES:
            return ("Lifeline is missing Manage Roles: turn it on for Lifeline's role in "
                    "Server Settings → Roles")
        case Missing.ROLE_GONE:
            return ("the verified role no longer exists: run /lifeline setup with the role "
                    "to use")
        case Missing.ROLE_NOT_ASSIGNABLE:
            return (f"{problem.role} cannot be given by a bot (it is @everyone or managed by "
                    "an integration): run /lifeline setup with a role of your own")
        case Missing.ROLE_ABOVE_BOT:
            return (f"Lifeline's role is below {problem.role}: drag it above {problem.role} "
                    "in Server Settings → Roles")
        case Missing.CHANNEL_GONE:
            return ("the log channel no longer exists: run /lifeline setup with the channel "
                    "to use")
        case Missing.CHANNEL_PERMISSIONS:
            return (f"missing {', '.join(problem.permissions)} in #{problem.channel}: allow "
                    "them for Lifeline in the channel's settings → Permissions")


def setup_section(guild: discord.Guild | None, log_channel_id: int | None,
                  verified_role_id: int | None) -> list[str]:
    """The answers' "Discord permissions" part: a heading, then each problem, or that all
    is right."""
    if guild is None:
        return []
    problems = setup_problems(guild, log_channel_id, verified_role_id)
    if not problems:
        return ["**Discord permissions**: ✅ Lifeline has what it needs"]
    return [f"**Discord permissions**: ⚠️ {len(problems)} to fix",
            *(f"• {describe(p)}" for p in problems)]
