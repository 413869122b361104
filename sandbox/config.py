"""Settings of one sandbox instance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .clock import Clock
from .permissions import (
    APP_FLAG_GATEWAY_GUILD_MEMBERS,
    APP_FLAG_GATEWAY_MESSAGE_CONTENT,
    APP_FLAG_GATEWAY_PRESENCE,
    PRIVILEGED_INTENTS,
    Intent,
)


@dataclass
class SandboxConfig:
    token: str = "sandbox-token"  # noqa: S105 - the fake token a local sandbox accepts
    bot_user_id: int | None = None
    # Modern Discord applications share their id with their bot user; None keeps it so.
    application_id: int | None = None
    bot_name: str = "Lifeline"
    # What GET /gateway/bot advertises; clients choose their own count in IDENTIFY.
    shard_count: int = 1
    heartbeat_interval_ms: int = 41_250
    # POST /channels/{id}/messages: `message_rate_limit` per `message_rate_per` seconds per channel.
    message_rate_limit: int = 5
    message_rate_per: float = 5.0
    # Discord refuses an initial interaction response after 3 seconds (10062 Unknown interaction).
    interaction_ack_timeout: float = 3.0
    # Follow-ups and edits with an interaction's token: refused (401 code 50027) after 15 minutes.
    interaction_token_ttl: float = 15 * 60.0
    # How long a nonce sent with enforce_nonce keeps returning the first message (per author).
    nonce_window: float = 300.0
    # Privileged intents the application is approved for in the developer portal.
    privileged_intents: int = PRIVILEGED_INTENTS
    # Compress gateway frames when the client asks (zlib-stream); False sends plain text frames.
    compress: bool = True
    # Dispatches kept per session so a RESUME can replay what a client missed.
    resume_buffer: int = 1000
    # Every time window above reads this clock; tests advance it instead of waiting.
    clock: Clock = field(default_factory=Clock)
    # Keep the world (users, guilds, roles, channels, members, bans, messages, synced commands)
    # in <data_dir>/world.json: loaded at start, saved after changes and on stop. None (tests,
    # the scripted demo) keeps it in memory only.
    data_dir: Path | None = None
    # A change is written at most this many seconds later (and always on stop).
    save_delay: float = 0.5
    # OAuth2 (sandbox/oauth.py): the application's client secret (its client id is the
    # application id) and the redirect URIs registered for it; /oauth2/authorize refuses
    # any other redirect_uri. Both can be changed later with POST /_sandbox/oauth/app.
    oauth_client_secret: str = "sandbox-client-secret"  # noqa: S105 - a fake, local secret
    oauth_redirect_uris: list[str] = field(default_factory=list)

    def application_flags(self) -> int:
        flags = 0
        if self.privileged_intents & Intent.GUILD_MEMBERS:
            flags |= APP_FLAG_GATEWAY_GUILD_MEMBERS
        if self.privileged_intents & Intent.GUILD_PRESENCES:
            flags |= APP_FLAG_GATEWAY_PRESENCE
        if self.privileged_intents & Intent.MESSAGE_CONTENT:
            flags |= APP_FLAG_GATEWAY_MESSAGE_CONTENT
        return flags
