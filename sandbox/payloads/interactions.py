"""Interaction payloads (commands, autocomplete, components) and callback answers."""

from __future__ import annotations

from ..models import Channel, Guild, Member, User
from .objects import ATTACHMENT_SIZE_LIMIT, JSON, channel, member, role, user


def resolved(
    guild: Guild,
    channel_for_perms: Channel,
    *,
    user_ids: list[int],
    role_ids: list[int],
    channel_ids: list[int],
    users: dict[int, User],
    channels: dict[int, Channel],
) -> JSON:
    out: JSON = {}
    if user_ids:
        out["users"] = {str(i): user(users[i]) for i in user_ids}
        members = {
            str(i): member(
                guild.members[i],
                with_user=False,
                permissions=guild.channel_permissions(channel_for_perms, i),
            )
            for i in user_ids
            if i in guild.members
        }
        if members:
            out["members"] = members
    if role_ids:
        out["roles"] = {str(i): role(guild.roles[i]) for i in role_ids}
    if channel_ids:
        out["channels"] = {
            str(i): {
                "id": str(i),
                "name": channels[i].name,
                "type": channels[i].type,
                "permissions": str(guild.channel_permissions(channels[i], guild.owner_id)),
                "parent_id": None if channels[i].parent_id is None else str(channels[i].parent_id),
                "position": channels[i].position,
                "nsfw": False,
                "flags": 0,
                "rate_limit_per_user": 0,
                "last_message_id": None,
            }
            for i in channel_ids
        }
    return out


def command_data(
    command: JSON, options: list[JSON], resolved_data: JSON, *, command_type: int = 1
) -> JSON:
    data: JSON = {
        "id": command["id"],
        "name": command["name"],
        "type": command_type,
        "options": options,
    }
    if resolved_data:
        data["resolved"] = resolved_data
    if "guild_id" in command:
        data["guild_id"] = command["guild_id"]
    return data


def component_data(custom_id: str, component_type: int, values: list[str] | None = None) -> JSON:
    data: JSON = {"custom_id": custom_id, "component_type": component_type}
    if component_type != 2:
        data["values"] = values or []
    return data


def interaction(
    *,
    interaction_id: int,
    token: str,
    application_id: int,
    type: int,
    data: JSON,
    guild: Guild,
    channel_obj: Channel,
    invoker: Member,
    member_permissions: int,
    app_permissions: int,
    locale: str,
    message_payload: JSON | None = None,
) -> JSON:
    payload: JSON = {
        "id": str(interaction_id),
        "application_id": str(application_id),
        "type": type,
        "data": data,
        "guild_id": str(guild.id),
        "guild": {
            "id": str(guild.id),
            "locale": guild.preferred_locale,
            "features": list(guild.features),
        },
        "channel_id": str(channel_obj.id),
        "channel": channel(channel_obj, permissions=member_permissions),
        "member": member(invoker, permissions=member_permissions),
        "token": token,
        "version": 1,
        "app_permissions": str(app_permissions),
        "locale": locale,
        "guild_locale": guild.preferred_locale,
        "entitlements": [],
        "entitlement_sku_ids": [],
        "authorizing_integration_owners": {"0": str(guild.id)},
        "context": 0,
        "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
    }
    if message_payload is not None:
        payload["message"] = message_payload
    return payload


def interaction_callback(
    *,
    interaction_id: int,
    interaction_type: int,
    response_type: int,
    message_payload: JSON | None,
    ephemeral: bool,
    loading: bool,
) -> JSON:
    """The ``?with_response=true`` answer to an interaction callback."""
    inner: JSON = {
        "id": str(interaction_id),
        "type": interaction_type,
        "response_message_loading": loading,
        "response_message_ephemeral": ephemeral,
    }
    resource: JSON = {"type": response_type}
    if message_payload is not None:
        inner["response_message_id"] = message_payload["id"]
        resource["message"] = message_payload
    return {"interaction": inner, "resource": resource}
