"""Synced application commands, their per-guild overrides, and how Discord fills options.

Discord shows a command only to members who have its
``default_member_permissions`` (owner and administrators always), unless a
guild admin added an override for the member, one of their roles or @everyone.
:meth:`CommandRegistry.visible_to` applies that rule; the scenario refuses to
inject a command the member could not see.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import payloads
from .errors import CommandRefused
from .ids import SnowflakeGenerator
from .models import Guild
from .permissions import ALL_PERMISSIONS
from .world import World

JSON = dict[str, Any]

SUB_COMMAND = 1
SUB_COMMAND_GROUP = 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = (
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
)

OVERRIDE_ROLE = 1
OVERRIDE_USER = 2


@dataclass
class ResolvedIds:
    users: list[int] = field(default_factory=list)
    roles: list[int] = field(default_factory=list)
    channels: list[int] = field(default_factory=list)


class CommandRegistry:
    def __init__(self, ids: SnowflakeGenerator) -> None:
        self._ids = ids
        self.global_commands: list[JSON] = []
        self.guild_commands: dict[int, list[JSON]] = {}
        # (guild_id, command_id) -> {target_id: (type, allowed)}
        self.overrides: dict[tuple[int, int], dict[int, tuple[int, bool]]] = {}
        self.syncs: list[tuple[int | None, list[str]]] = []

    def _bucket(self, guild_id: int | None) -> list[JSON]:
        if guild_id is None:
            return self.global_commands
        return self.guild_commands.setdefault(guild_id, [])

    def _stored(
        self, definition: JSON, guild_id: int | None, application_id: int, previous: list[JSON]
    ) -> JSON:
        kind = definition.get("type", 1)
        same = next(
            (c for c in previous if c["name"] == definition["name"] and c.get("type", 1) == kind),
            None,
        )
        command_id = int(same["id"]) if same is not None else self._ids.next()
        return payloads.application_command(
            definition,
            command_id=command_id,
            application_id=application_id,
            guild_id=guild_id,
            version=self._ids.next(),
        )

    def bulk_overwrite(
        self, definitions: list[JSON], guild_id: int | None, application_id: int
    ) -> list[JSON]:
        """PUT semantics: the new list replaces the old one; unchanged names keep their ids."""
        previous = list(self._bucket(guild_id))
        stored = [self._stored(d, guild_id, application_id, previous) for d in definitions]
        self._bucket(guild_id)[:] = stored
        self.syncs.append((guild_id, [c["name"] for c in stored]))
        return stored

    def upsert(self, definition: JSON, guild_id: int | None, application_id: int) -> JSON:
        bucket = self._bucket(guild_id)
        stored = self._stored(definition, guild_id, application_id, bucket)
        bucket[:] = [c for c in bucket if c["id"] != stored["id"]] + [stored]
        return stored

    def delete(self, command_id: int, guild_id: int | None) -> bool:
        bucket = self._bucket(guild_id)
        before = len(bucket)
        bucket[:] = [c for c in bucket if int(c["id"]) != command_id]
        return len(bucket) != before

    def get(self, command_id: int, guild_id: int | None) -> JSON | None:
        return next((c for c in self._bucket(guild_id) if int(c["id"]) == command_id), None)

    def find(self, name: str, guild_id: int) -> JSON | None:
        """A chat-input command as the guild sees it: guild commands first, then global ones."""
        for command in [*self.guild_commands.get(guild_id, []), *self.global_commands]:
            if command["name"] == name and command.get("type", 1) == 1:
                return command
        return None

    # -- overrides and visibility ----------------------------------------
    def set_override(
        self, guild_id: int, command_id: int, target_id: int, kind: int, allowed: bool
    ) -> None:
        self.overrides.setdefault((guild_id, command_id), {})[target_id] = (kind, allowed)

    def overrides_for(self, guild_id: int, command_id: int) -> list[tuple[int, int, bool]]:
        entries = self.overrides.get((guild_id, command_id), {})
        return [(target, kind, allowed) for target, (kind, allowed) in entries.items()]

    def visible_to(self, command: JSON, guild: Guild, user_id: int) -> bool:
        perms = guild.base_permissions(user_id)
        if perms == ALL_PERMISSIONS:
            return True
        member = guild.member(user_id)
        overrides = self.overrides.get((guild.id, int(command["id"])), {})
        if user_id in overrides:
            return overrides[user_id][1]
        role_answers = [overrides[r][1] for r in member.roles if r in overrides]
        if role_answers:
            return any(role_answers)
        if guild.id in overrides:
            return overrides[guild.id][1]
        required = command.get("default_member_permissions")
        if required is None:
            return True
        wanted = int(required)
        return wanted != 0 and perms & wanted == wanted


def build_options(
    command: JSON,
    path: list[str],
    values: Mapping[str, Any],
    *,
    guild: Guild,
    world: World,
    focused: str | None = None,
) -> tuple[list[JSON], ResolvedIds]:
    """Interaction ``data.options`` for ``/name path... values``: subcommands nest as type 1/2."""
    node = command
    chain: list[JSON] = []
    for word in path:
        sub = next(
            (o for o in node.get("options", []) if o["name"] == word and o["type"] in (1, 2)), None
        )
        if sub is None:
            raise CommandRefused(f"/{' '.join([command['name'], *path])}: no subcommand {word!r}")
        chain.append(sub)
        node = sub
    if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in node.get("options", [])):
        names = [o["name"] for o in node["options"]]
        raise CommandRefused(
            f"/{' '.join([command['name'], *path])} needs a subcommand, one of {names}"
        )
    refs = ResolvedIds()
    options = _value_options(node, values, guild=guild, world=world, focused=focused, refs=refs)
    for sub in reversed(chain):
        options = [{"name": sub["name"], "type": sub["type"], "options": options}]
    return options, refs


def _value_options(
    node: JSON,
    values: Mapping[str, Any],
    *,
    guild: Guild,
    world: World,
    focused: str | None,
    refs: ResolvedIds,
) -> list[JSON]:
    definitions = {o["name"]: o for o in node.get("options", [])}
    unknown = set(values) - set(definitions)
    if unknown:
        raise CommandRefused(
            f"unknown option(s) {sorted(unknown)}; the command has {sorted(definitions)}"
        )
    if focused is not None and focused not in definitions:
        raise CommandRefused(f"focused option {focused!r} is not an option of the command")
    out: list[JSON] = []
    for name, definition in definitions.items():
        if name == focused:
            out.append(
                {
                    "name": name,
                    "type": definition["type"],
                    "value": values.get(name, ""),
                    "focused": True,
                }
            )
            continue
        if name not in values:
            if definition.get("required") and focused is None:
                raise CommandRefused(f"missing required option {name!r}")
            continue
        value = _convert(definition, values[name], guild=guild, world=world, refs=refs)
        out.append({"name": name, "type": definition["type"], "value": value})
    return out


def _snowflake(raw: Any) -> int:
    raw = getattr(raw, "id", raw)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise CommandRefused(f"{raw!r} is not a snowflake") from None


def _convert(definition: JSON, raw: Any, *, guild: Guild, world: World, refs: ResolvedIds) -> Any:
    name, kind = definition["name"], definition["type"]
    if kind == STRING:
        value: Any = str(raw)
        if "min_length" in definition and len(value) < definition["min_length"]:
            raise CommandRefused(f"option {name!r} is shorter than {definition['min_length']}")
        if "max_length" in definition and len(value) > definition["max_length"]:
            raise CommandRefused(f"option {name!r} is longer than {definition['max_length']}")
    elif kind == INTEGER:
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise CommandRefused(f"option {name!r} needs an integer, got {raw!r}")
        try:
            value = int(raw)
        except ValueError:
            raise CommandRefused(f"option {name!r} needs an integer, got {raw!r}") from None
    elif kind == NUMBER:
        value = float(raw)
    elif kind == BOOLEAN:
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            raw = raw.lower() == "true"
        if not isinstance(raw, bool):
            raise CommandRefused(f"option {name!r} needs a boolean, got {raw!r}")
        value = raw
    elif kind in (USER, MENTIONABLE):
        target = _snowflake(raw)
        if target in world.users:
            refs.users.append(target)
        elif kind == MENTIONABLE and target in guild.roles:
            refs.roles.append(target)
        else:
            raise CommandRefused(f"option {name!r}: unknown user {target}")
        value = str(target)
    elif kind == ROLE:
        target = _snowflake(raw)
        if target not in guild.roles:
            raise CommandRefused(f"option {name!r}: unknown role {target}")
        refs.roles.append(target)
        value = str(target)
    elif kind == CHANNEL:
        target = _snowflake(raw)
        if target not in guild.channels:
            raise CommandRefused(f"option {name!r}: unknown channel {target}")
        refs.channels.append(target)
        value = str(target)
    else:
        raise CommandRefused(f"option {name!r} has type {kind}, which the sandbox cannot fill")
    if kind in (INTEGER, NUMBER):
        if "min_value" in definition and value < definition["min_value"]:
            raise CommandRefused(f"option {name!r} is below {definition['min_value']}")
        if "max_value" in definition and value > definition["max_value"]:
            raise CommandRefused(f"option {name!r} is above {definition['max_value']}")
    choices = definition.get("choices")
    if choices and value not in [c["value"] for c in choices]:
        raise CommandRefused(f"option {name!r} must be one of {[c['value'] for c in choices]}")
    return value
