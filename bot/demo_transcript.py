"""The demo's transcript: what a person would read in Discord, not the markup Discord renders.

Bot answers, embeds and log lines carry Discord's markup (`<@id>`, `<@&id>`, `<#id>`,
`<t:unix:style>`), which a terminal shows raw. Every line the demo prints goes through
`Transcript.say`, which renders users, roles and channels by name and timestamps as text,
as the Discord client would.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from sandbox import Guild

_USER = re.compile(r"<@!?(\d+)>")
_ROLE = re.compile(r"<@&(\d+)>")
_CHANNEL = re.compile(r"<#(\d+)>")
_TIME = re.compile(r"<t:(-?\d+)(?::([tTdDfFR]))?>")


def relative(seconds: float) -> str:
    """`<t:…:R>` as the Discord client words it, roughly."""
    ahead, seconds = seconds > 0, abs(seconds)
    if seconds < 45:
        return "just now" if not ahead else "in a few seconds"
    amount, unit = next((int(seconds // size), name) for size, name in (
        (86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")) if seconds >= size)
    words = f"{amount} {unit}{'s' if amount != 1 else ''}"
    return f"in {words}" if ahead else f"{words} ago"


class Transcript:
    """Numbered chapters and `who | what` lines, every one rendered by name."""

    def __init__(self, guild: Guild, names: dict[int, str] | None = None) -> None:
        self.guild = guild
        self.names: dict[int, str] = names if names is not None else {}
        self.step = 0

    def chapter(self, title: str) -> None:
        self.step += 1
        print(f"\n== {self.step}. {self.render(title)}", flush=True)

    def say(self, who: str, what: str) -> None:
        print(f"  {who:>10} | {self.render(what)}", flush=True)

    def user(self, user_id: int) -> str:
        """A user's name: the demo's own name for them, else the sandbox's, else the id."""
        if user_id in self.names:
            return self.names[user_id]
        member = self.guild.members.get(user_id)
        return member.user.username if member is not None else str(user_id)

    def option(self, key: str, value: Any) -> str:
        """A slash command option as typed in Discord: users, roles, channels by name."""
        if isinstance(value, int) and not isinstance(value, bool):
            if key == "user" or value in self.names or value in self.guild.members:
                return "@" + self.user(value)
            if value in self.guild.roles:
                return "@" + self.guild.roles[value].name
            if value in self.guild.channels:
                return "#" + self.guild.channels[value].name
        return str(value)

    def render(self, text: str) -> str:
        def role(match: re.Match[str]) -> str:
            found = self.guild.roles.get(int(match.group(1)))
            return f"@{found.name}" if found is not None else "@deleted-role"

        def channel(match: re.Match[str]) -> str:
            found = self.guild.channels.get(int(match.group(1)))
            return f"#{found.name}" if found is not None else "#deleted-channel"

        def stamp(match: re.Match[str]) -> str:
            at = int(match.group(1))
            if match.group(2) == "R":
                return relative(at - time.time())
            return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

        text = _ROLE.sub(role, text)
        text = _CHANNEL.sub(channel, text)
        text = _USER.sub(lambda m: "@" + self.user(int(m.group(1))), text)
        return _TIME.sub(stamp, text)
