"""Every JSON payload the sandbox sends, built in one place and complete.

discord.py reads many keys with ``data['key']``; a missing one raises
KeyError inside the gateway parser and ends ``bot.start()``. So each builder
here fills every key that discord.py 2.7.1's ``discord/types`` marks required,
and nothing else in the sandbox assembles payloads by hand.

``objects`` builds Discord objects (user, role, member, channel, guild,
message), ``events`` gateway frames and event bodies, ``api`` REST-only
answers (application, gateway/bot, commands), ``interactions`` interaction
payloads and callback answers. All are re-exported here: ``payloads.user(...)``.
"""

from .api import application, application_command, command_permissions, gateway_bot
from .events import (
    ban,
    ban_event,
    dispatch,
    heartbeat_ack,
    hello,
    invalid_session,
    member_add,
    member_remove,
    member_update,
    members_chunk,
    message_delete,
    ready,
    reconnect,
    role_event,
)
from .interactions import command_data, component_data, interaction, interaction_callback, resolved
from .objects import (
    API_VERSION,
    ATTACHMENT_SIZE_LIMIT,
    JSON,
    channel,
    current_user,
    guild_create,
    guild_rest,
    iso,
    member,
    message,
    role,
    unavailable_guild,
    user,
)

__all__ = [
    "API_VERSION",
    "ATTACHMENT_SIZE_LIMIT",
    "JSON",
    "application",
    "application_command",
    "ban",
    "ban_event",
    "channel",
    "command_data",
    "command_permissions",
    "component_data",
    "current_user",
    "dispatch",
    "gateway_bot",
    "guild_create",
    "guild_rest",
    "heartbeat_ack",
    "hello",
    "interaction",
    "interaction_callback",
    "invalid_session",
    "iso",
    "member",
    "member_add",
    "member_remove",
    "member_update",
    "members_chunk",
    "message",
    "message_delete",
    "ready",
    "reconnect",
    "resolved",
    "role",
    "role_event",
    "unavailable_guild",
    "user",
]
