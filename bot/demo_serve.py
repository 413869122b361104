"""What `python -m bot sandbox --serve` prints once the story is told: how to go on by hand.

Everything it prints can be pasted into a shell as is: the addresses and ids as `export`
lines (the README's "Try it" section uses the same names), the demo's members with their
ids, who is the owner and who is staff, and what Lifeline has stored for each.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys

from pydantic import SecretStr

from bot.api.server import ApiServer
from bot.container import Container
from bot.settings import Settings
from sandbox import Guild, Member, Sandbox

STAFF_ROLE = "Staff"
SHOWN = 20  # members listed; the rest are in GET /_sandbox/state


def member_lines(guild: Guild, states: dict[int, str]) -> list[str]:
    """One line per human member: name, id, owner/staff, Lifeline's state."""
    staff_role = next((r.id for r in guild.roles.values() if r.name == STAFF_ROLE), None)
    lines = []
    humans = sorted((m for m in guild.members.values() if not m.user.bot), key=lambda m: m.id)
    for member in humans[:SHOWN]:
        role = ("owner (Manage Server)" if member.id == guild.owner_id
                else "staff (Staff role)" if staff_role in member.roles else "member")
        lines.append(f"  {member.user.username:<12} {member.id:<20} {role:<22} "
                     f"{states.get(member.id, '(not stored)')}")
    if len(humans) > SHOWN:
        lines.append(f"  ... and {len(humans) - SHOWN} more: curl -s $SANDBOX/_sandbox/state")
    return lines


def env_name(username: str) -> str:
    name = "".join(c if c.isalnum() else "_" for c in username).upper()
    return name if name[:1].isalpha() else "U_" + name


def member_exports(members: list[Member], taken: set[str]) -> str:
    """`ALICE=123 CAROL=456`: one variable per member, never one the shell already has or
    one printed above (a member called "path" or "sandbox" is left out, not exported over
    PATH or SANDBOX), and the first of two members with one name."""
    pairs: list[str] = []
    for member in members[:SHOWN]:
        name = env_name(member.user.username)
        if name not in taken:
            taken.add(name)
            pairs.append(f"{name}={member.id}")
    return " ".join(pairs)


def with_console(settings: Settings, sandbox: Sandbox) -> Settings:
    """The staff console on, logging in through the sandbox's OAuth2 (its consent page lets
    you pick any of its users): the sandbox's application, a session secret of this run,
    and the callback registered with the sandbox. API_PORT 0 becomes a free port now, since
    the console's address must be known before it starts."""
    port = settings.api_port
    if port == 0:
        with socket.socket() as probe:
            probe.bind((settings.api_host, 0))
            port = probe.getsockname()[1]
    console_url = f"http://{settings.api_host}:{port}"
    sandbox.config.oauth_redirect_uris.append(f"{console_url}/console/callback")
    return settings.model_copy(update={
        "api_port": port, "console_url": console_url,
        "discord_client_id": str(sandbox.application_id),
        "discord_client_secret": SecretStr(sandbox.config.oauth_client_secret),
        "console_session_secret": settings.console_session_secret
        or SecretStr(secrets.token_urlsafe(32)),
        "discord_oauth_url": f"{sandbox.base_url}/oauth2/authorize",
        "discord_api_base": sandbox.api_url})


async def print_serve_help(container: Container, sandbox: Sandbox, api: ApiServer,
                           token: str, guild: Guild) -> None:
    states: dict[int, str] = {}
    shown = sorted(m.id for m in guild.members.values() if not m.user.bot)[:SHOWN]
    for user_id in shown:  # a world grown by hand may hold thousands: read what is shown
        member = await container.transitions.get_member(guild.id, user_id)
        if member is not None:
            states[user_id] = member.state.value
    staff = next((m for m in guild.members.values() if not m.user.bot
                  and any(guild.roles[r].name == STAFF_ROLE for r in m.roles
                          if r in guild.roles)), None)
    mod_log = next((c.id for c in guild.channels.values() if c.name == "mod-log"), None)
    exports = [f"SANDBOX={sandbox.base_url}", f"LIFELINE_API={api.url}",
               f"LIFELINE_API_TOKEN={token}", f"GUILD={guild.id}", f"OWNER={guild.owner_id}"]
    if staff is not None:
        exports.append(f"STAFF={staff.id}")
    if mod_log is not None:
        exports.append(f"MOD_LOG={mod_log}")
    others = [m for m in guild.members.values() if not m.user.bot
              and m.id != guild.owner_id and (staff is None or m.id != staff.id)]
    names = member_exports(others, {e.split("=", 1)[0] for e in exports} | set(os.environ))
    staff_name = staff.user.username if staff is not None else "(nobody)"
    lines = ["", "Everything keeps running (Ctrl-C to stop). In another shell, paste:",
             "  export " + " ".join(exports[:3]), "  export " + " ".join(exports[3:])]
    if names:
        lines.append("  export " + names)
    lines += [
        "",
        f"Members of {guild.name} (act as any of them with $SANDBOX/_sandbox/command; the "
        f"owner has Manage Server, {staff_name} holds the Staff role: both are staff):",
        f"  {'name':<12} {'id':<20} {'who':<22} Lifeline's state",
        *member_lines(guild, states),
        "",
        'Then try (README.md, "Try it"), e.g.:',
        """  curl -s $SANDBOX/_sandbox/onboard -d '{"guild_id": "'$GUILD'", "username": "zoe"}'""",
        '  curl -s -H "Authorization: Bearer $LIFELINE_API_TOKEN" '
        "$LIFELINE_API/api/v1/guilds/$GUILD/dead-letters/stats",
        '  curl -s "$SANDBOX/_sandbox/messages?channel_id=$MOD_LOG"',
        "Every control endpoint and its body: curl -s $SANDBOX/_sandbox/",
    ]
    if container.settings.console_off_reason() is None:
        lines += ["", f"Staff console: {container.settings.console_base_url}/console "
                      f"(log in on the sandbox's page as {staff_name} or the owner; a "
                      "member who is not staff sees no server)"]
    print("\n".join(lines), file=sys.stdout, flush=True)
