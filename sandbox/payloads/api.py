"""REST-only answers: the application, ``/gateway/bot``, synced commands."""

from __future__ import annotations

from ..models import User
from .objects import JSON, user


def application(*, application_id: int, name: str, owner: User, flags: int) -> JSON:
    return {
        "id": str(application_id),
        "name": name,
        "icon": None,
        "description": "Local Discord sandbox application",
        "summary": "",
        "type": None,
        "bot_public": False,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "flags": flags,
        "owner": user(owner),
        "team": None,
        "tags": [],
        "rpc_origins": [],
        "redirect_uris": [],
        "interactions_endpoint_url": None,
        "role_connections_verification_url": None,
        "approximate_guild_count": 0,
        "approximate_user_install_count": 0,
        "integration_types_config": {"0": {}},
        "install_params": {"scopes": ["bot", "applications.commands"], "permissions": "0"},
    }


def gateway_bot(*, url: str, shards: int, remaining: int) -> JSON:
    return {
        "url": url,
        "shards": shards,
        "session_start_limit": {
            "total": 1000,
            "remaining": remaining,
            "reset_after": 14_400_000,
            "max_concurrency": 1,
        },
    }


def application_command(
    definition: JSON, *, command_id: int, application_id: int, guild_id: int | None, version: int
) -> JSON:
    """A synced command as Discord stores it: the bot's definition plus ids and defaults."""
    payload: JSON = {
        "type": 1,
        "description": "",
        "options": [],
        "default_member_permissions": None,
        "dm_permission": True,
        "nsfw": False,
        "contexts": [0, 1, 2],
        "integration_types": [0],
        "name_localizations": None,
        "description_localizations": None,
        **definition,
        "id": str(command_id),
        "application_id": str(application_id),
        "version": str(version),
    }
    if payload["default_member_permissions"] is not None:
        # Discord answers with the bit set as a string, whatever the client sent.
        payload["default_member_permissions"] = str(int(payload["default_member_permissions"]))
    if guild_id is not None:
        payload["guild_id"] = str(guild_id)
        payload.pop("dm_permission", None)
    return payload


def command_permissions(
    *, command_id: int, application_id: int, guild_id: int, grants: list[tuple[int, int, bool]]
) -> JSON:
    """``grants`` are ``(target_id, type, allowed)``; type 1 role, 2 user."""
    return {
        "id": str(command_id),
        "application_id": str(application_id),
        "guild_id": str(guild_id),
        "permissions": [
            {"id": str(t), "type": kind, "permission": allowed} for t, kind, allowed in grants
        ],
    }
