"""What each ``/_sandbox/`` endpoint takes and does, said once.

``GET /_sandbox/`` answers this table, so a person with curl learns every body from the
sandbox itself; `tests/sandbox/test_control.py` checks that every registered control route
is described here and nothing else is.
"""

from __future__ import annotations

from typing import Final

# (method, path, query or JSON body, what it does). Ids may be strings or numbers.
ENDPOINTS: Final[tuple[tuple[str, str, str, str], ...]] = (
    ("GET", "/_sandbox/", "", "addresses, the bot token, guilds and this table"),
    ("GET", "/_sandbox/state", "", "guilds with channels, roles, members (flags, pending), bans"),
    ("GET", "/_sandbox/messages", "?channel_id=ID[&ephemeral=1]",
     "a channel's messages, oldest first"),
    ("GET", "/_sandbox/calls", "?since=N", "the bot's REST calls from index N on"),
    ("GET", "/_sandbox/unknown_routes", "", "REST calls the sandbox does not know"),
    ("GET", "/_sandbox/role_changes", "", "role grants and removals the bot made"),
    ("GET", "/_sandbox/sessions", "", "gateway sessions"),
    ("GET", "/_sandbox/interactions/{interaction_id}", "",
     "one interaction: its replies and messages"),
    ("POST", "/_sandbox/guilds", '{"name", "guild_id"?, "shard"?, "channels"?}',
     "create a guild"),
    ("POST", "/_sandbox/join",
     '{"guild_id", "user_id"?, "username"?, "pending"? (true), "roles"?, "flags"?}',
     "a user joins (a new user unless user_id names one)"),
    ("POST", "/_sandbox/onboard",
     '{"guild_id", "user_id"? | "username"?, "until"?: "joined" | "started_onboarding" | '
     '"completed_onboarding" | "rules_accepted" (the default)}',
     "walk a member through joining, onboarding and the rules screen, one gateway event a "
     "step, as a person would (joins them first unless user_id is a member)"),
    ("POST", "/_sandbox/leave", '{"guild_id", "user_id"}', "a member leaves"),
    ("POST", "/_sandbox/update",
     '{"guild_id", "user_id", "flags"?, "pending"?, "roles"?, "nick"?}',
     "a member changes (GUILD_MEMBER_UPDATE)"),
    ("POST", "/_sandbox/role", '{"guild_id", "role_id", "permissions"?, "position"?}',
     "an admin edits a role or drags it to a position"),
    ("POST", "/_sandbox/ban", '{"guild_id", "user_id", "reason"?}', "ban a user"),
    ("POST", "/_sandbox/unban", '{"guild_id", "user_id"}', "lift a ban"),
    ("POST", "/_sandbox/message", '{"channel_id", "user_id", "content"}',
     "a member posts a message"),
    ("POST", "/_sandbox/command",
     '{"guild_id", "user_id", "command": "dlq retry", "options"?, "channel_id"?, "wait"?}',
     "a member runs a slash command; with wait (seconds) the answer comes once the bot's "
     "reply can be read (its text in text)"),
    ("POST", "/_sandbox/autocomplete",
     '{"guild_id", "user_id", "command", "options"?, "focused", "wait"?}',
     "a member types into an option; the choices the bot offers"),
    ("POST", "/_sandbox/button",
     '{"interaction_id" | "message_id", "custom_id", "user_id", "wait"?}',
     "a member presses a button"),
    ("POST", "/_sandbox/grant", '{"guild_id", "command", "target_id", "allow"?}',
     "an admin lets a role or user see a command (Integrations settings)"),
    ("POST", "/_sandbox/disconnect", '{"shard_id"?, "code"?, "invalidate"?}',
     "drop the bot's gateway connection"),
    ("POST", "/_sandbox/fault",
     '{"method", "route", "kind", "count"?, "retry_after"?, "hang_seconds"?}',
     "make the next REST calls to a route fail"),
    ("POST", "/_sandbox/oauth/authorize",
     '{"user_id", "client_id"?, "redirect_uri", "scope", "state"?, "code_challenge"?}',
     "a user consents to an OAuth2 login with no browser; answers {redirect_url, code, "
     "state}"),
    ("POST", "/_sandbox/oauth/app", '{"client_secret"?, "redirect_uris"?}',
     "set the OAuth2 application's client secret and allowed redirect URIs"),
    ("GET", "/_sandbox/oauth/tokens", "", "the OAuth2 tokens issued: live, revoked or expired"),
)


def described() -> list[dict[str, str]]:
    return [{"method": m, "path": p, "body": b, "does": d} for m, p, b, d in ENDPOINTS]
