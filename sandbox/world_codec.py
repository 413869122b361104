"""The sandbox world as plain JSON and back: what :mod:`sandbox.persistence` writes to disk.

Kept: users, guilds (roles, members, bans), channels (with overwrites; deleted ones too, so
their ids stay taken), messages, the synced commands and their overrides, recent enforced
nonces, and the highest id handed out. Not kept: gateway sessions, interaction handles and
tokens, rate-limit windows, injected faults, recorded calls (all of a running process only).

Ids are JSON strings, as in Discord's own payloads; times are ISO 8601. Objects that the
world shares (a member's user is the world's user) are written once and referenced by id.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import fields
from typing import Any, TypeVar

from .commands import CommandRegistry
from .core import Core
from .models import Ban, Channel, Guild, InteractionRef, Member, Message, Overwrite, Role, User

JSON = dict[str, Any]
T = TypeVar("T")

FORMAT = "lifeline-sandbox-world"
VERSION = 1

_IDS = frozenset({
    "id", "guild_id", "owner_id", "channel_id", "parent_id", "recipient_id", "last_message_id",
    "system_channel_id", "webhook_id", "application_id", "reference_id", "bot_id",
})
_ID_LISTS = frozenset({"roles", "mentions", "mention_roles"})
_TIMES = frozenset({"joined_at", "created_at", "edited_at", "communication_disabled_until"})


class FormatError(ValueError):
    """The data is JSON but not a world this sandbox can read."""


def _encode_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _IDS:
        return str(value)
    if name in _ID_LISTS:
        return [str(v) for v in value]
    if name in _TIMES:
        return value.isoformat()
    return value


def _decode_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _IDS:
        return int(value)
    if name in _ID_LISTS:
        return [int(v) for v in value]
    if name in _TIMES:
        moment = datetime.datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise FormatError(f"{name} {value!r} has no time zone")
        return moment
    return value


def _encode(obj: Any, **replaced: Any) -> JSON:
    """Every dataclass field of ``obj``; ``replaced`` gives some fields another form."""
    out: JSON = {}
    for f in fields(obj):
        if f.name in replaced:
            out.update(replaced[f.name])
        else:
            out[f.name] = _encode_value(f.name, getattr(obj, f.name))
    return out


def _decode(cls: type[T], data: JSON, **given: Any) -> T:
    """``cls`` from the fields ``data`` has (others keep their defaults); ``given`` wins."""
    if not isinstance(data, dict):
        raise FormatError(f"a {cls.__name__} must be an object, not {type(data).__name__}")
    kwargs = dict(given)
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name not in kwargs and f.name in data:
            kwargs[f.name] = _decode_value(f.name, data[f.name])
    return cls(**kwargs)


# -- writing -----------------------------------------------------------------
def _message(m: Message) -> JSON:
    ref = m.interaction
    interaction = None if ref is None else {
        "id": str(ref.id), "type": ref.type, "name": ref.name, "user_id": str(ref.user.id)}
    return _encode(m, author={"author_id": str(m.author.id)},
                   interaction={"interaction": interaction})


def _guild(g: Guild) -> JSON:
    return _encode(
        g,
        roles={"roles": [_encode(r) for r in g.roles.values()]},
        # A guild's channels are the world's live channels of that guild (see _channel).
        channels={},
        members={"members": [_encode(m, user={"user_id": str(m.user.id)})
                             for m in g.members.values()]},
        bans={"bans": [{"user_id": str(b.user.id), "reason": b.reason} for b in g.bans.values()]},
    )


def _channel(c: Channel) -> JSON:
    return _encode(c, overwrites={"overwrites": [
        {"id": str(o.id), "type": o.type, "allow": str(o.allow), "deny": str(o.deny)}
        for o in c.overwrites.values()]})


def _commands(registry: CommandRegistry) -> JSON:
    return {
        "global": registry.global_commands,
        "guilds": {str(g): cmds for g, cmds in registry.guild_commands.items()},
        "overrides": [
            {"guild_id": str(g), "command_id": str(c), "target_id": str(t), "type": kind,
             "allowed": allowed}
            for (g, c), targets in registry.overrides.items()
            for t, (kind, allowed) in targets.items()],
    }


def _nonces(core: Core) -> list[JSON]:
    """Nonces still inside their window, by age, so a restart keeps honouring them."""
    now = core.clock.now()
    return [
        {"author_id": str(author), "nonce": nonce, "message_id": str(message_id),
         "age": now - at}
        for (author, nonce), (message_id, at) in core.nonces.items()
        if now - at <= core.config.nonce_window]


def encode(core: Core) -> JSON:
    world = core.world
    return {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": time.time(),
        "highest_id": str(world.ids.highest),
        "bot_user_id": str(world.bot_user.id),
        "users": [_encode(u) for u in world.users.values()],
        "guilds": [_guild(g) for g in world.guilds.values()],
        "channels": [_channel(c) for c in world.channels.values()],
        "messages": [_message(m) for m in world.messages.values()],
        "commands": _commands(core.commands),
        "nonces": _nonces(core),
    }


# -- reading -----------------------------------------------------------------
def _replace(target: dict[int, T], source: dict[int, T]) -> None:
    target.clear()
    target.update(source)


def decode_into(core: Core, data: Any) -> None:
    """Replace ``core``'s world with the saved one (before the server starts).

    Raises FormatError, or KeyError/TypeError/ValueError for a damaged file; the world is
    only changed once everything has been read.
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise FormatError("not a sandbox world file")
    if data.get("version") != VERSION:
        raise FormatError(f"world file version {data.get('version')!r}; this sandbox reads "
                          f"version {VERSION}")
    users = {int(u["id"]): _decode(User, u) for u in data["users"]}
    bot_user = users[int(data["bot_user_id"])]
    wanted = core.config.bot_user_id
    if wanted is not None and wanted != bot_user.id:
        raise FormatError(f"the saved world belongs to bot user {bot_user.id}, not to the "
                          f"configured bot_user_id {wanted}")
    channels = {int(c["id"]): _decode(Channel, c, overwrites={
        int(o["id"]): Overwrite(int(o["id"]), int(o["type"]), int(o["allow"]), int(o["deny"]))
        for o in c["overwrites"]}) for c in data["channels"]}
    guilds: dict[int, Guild] = {}
    for g in data["guilds"]:
        gid = int(g["id"])
        guilds[gid] = _decode(
            Guild, g,
            roles={int(r["id"]): _decode(Role, r) for r in g["roles"]},
            channels={c.id: c for c in channels.values() if c.guild_id == gid and not c.deleted},
            members={int(m["user_id"]): _decode(Member, m, user=users[int(m["user_id"])])
                     for m in g["members"]},
            bans={int(b["user_id"]): Ban(users[int(b["user_id"])], b.get("reason"))
                  for b in g["bans"]},
        )
    messages: dict[int, Message] = {}
    for m in data["messages"]:
        ref = m.get("interaction")
        interaction = None if ref is None else InteractionRef(
            int(ref["id"]), int(ref["type"]), str(ref["name"]), users[int(ref["user_id"])])
        message = _decode(Message, m, author=users[int(m["author_id"])], interaction=interaction)
        messages[message.id] = message
    commands = data["commands"]
    overrides: dict[tuple[int, int], dict[int, tuple[int, bool]]] = {}
    for o in commands["overrides"]:
        key = (int(o["guild_id"]), int(o["command_id"]))
        overrides.setdefault(key, {})[int(o["target_id"])] = (int(o["type"]), bool(o["allowed"]))
    downtime = max(0.0, time.time() - float(data["saved_at"]))
    now = core.clock.now()
    nonces = {
        (int(n["author_id"]), str(n["nonce"])): (int(n["message_id"]),
                                                 now - float(n["age"]) - downtime)
        for n in data["nonces"]}
    highest = int(data["highest_id"])

    # Everything read: now replace, in place (the gateway and the registry hold these objects).
    world = core.world
    _replace(world.users, users)
    _replace(world.guilds, guilds)
    _replace(world.channels, channels)
    _replace(world.messages, messages)
    world.bot_user = bot_user
    registry = core.commands
    registry.global_commands[:] = list(commands["global"])
    registry.guild_commands.clear()
    registry.guild_commands.update({int(g): list(c) for g, c in commands["guilds"].items()})
    registry.overrides.clear()
    registry.overrides.update(overrides)
    core.nonces.clear()
    core.nonces.update(nonces)
    for known in (highest, *users, *guilds, *channels, *messages):
        world.ids.observe(known)
