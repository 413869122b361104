"""Settings from the environment and `.env` (pydantic-settings).

A bad value stops start-up with one line naming the setting: `SettingsError`.
"""

from __future__ import annotations

import base64
import difflib
import logging
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.persistence.database import asyncpg_url

SECRET_SETTINGS = ("DATABASE_URL", "DISCORD_TOKEN", "API_TOKEN", "DISCORD_CLIENT_SECRET",
                   "CONSOLE_SESSION_SECRET")
DISCORD_AUTHORIZE_URL = "https://discord.com/oauth2/authorize"
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


class SettingsError(Exception):
    """One line: which setting is wrong and why."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8",
                                      extra="ignore", case_sensitive=False,
                                      validate_default=True)

    database_url: SecretStr | None = Field(default=None, description=(
        "PostgreSQL URL; unset = embedded PostgreSQL under DATA_DIR/pg"))
    data_dir: Path = Field(default=Path("./.data"), description=(
        "Where the embedded PostgreSQL (DATA_DIR/pg) and the ingest log of gateway events "
        "(DATA_DIR/ingest) live"))
    discord_token: SecretStr | None = Field(default=None, description=(
        "Bot token; needed only by commands that talk to Discord"))
    discord_api_base: str | None = Field(default=None, description=(
        "REST base URL override (sandbox only; unset in production)"))
    discord_gateway_url: str | None = Field(default=None, description=(
        "Gateway URL override (sandbox only; unset in production)"))
    transition_max_attempts: int = Field(default=5, ge=1, le=50, description=(
        "Compare-and-set attempts before a write is dead-lettered"))
    transition_backoff_initial_seconds: float = Field(default=0.005, gt=0, le=10, description=(
        "Scale of the jittered exponential backoff between attempts"))
    transition_backoff_max_seconds: float = Field(default=0.2, gt=0, le=60, description=(
        "Upper bound of one backoff wait"))
    log_level: str = Field(default="INFO", description="CRITICAL, ERROR, WARNING, INFO or DEBUG")
    db_pool_size: int = Field(default=10, ge=1, le=200, description=(
        "Connections kept open per process"))
    db_max_overflow: int = Field(default=10, ge=0, le=200, description=(
        "Extra connections a process may open under load"))
    db_interactive_pool_size: int = Field(default=4, ge=0, le=100, description=(
        "Connections of a second pool for what staff wait on (slash commands, dead-letter "
        "pages, remediation); 0 = staff share the main pool"))
    db_statement_cache_size: int = Field(default=100, ge=0, le=10000, description=(
        "asyncpg prepared-statement cache; 0 behind a transaction-mode pooler"))
    api_token: SecretStr | None = Field(default=None, description=(
        "Bearer token of the HTTP API; unset = the API is off in `run` (and `api` refuses "
        "to start)"))
    api_host: str = Field(default="127.0.0.1", min_length=1, description=(
        "Address the HTTP API binds to"))
    api_port: int = Field(default=8080, ge=0, le=65535, description=(
        "Port of the HTTP API (0 = any free port)"))
    discord_client_id: str | None = Field(default=None, description=(
        "OAuth2 client id of the console's \"Login with Discord\"; unset = the bot's "
        "application id, read from DISCORD_TOKEN"))
    discord_client_secret: SecretStr | None = Field(default=None, description=(
        "OAuth2 client secret (Developer Portal → OAuth2); unset = the console is off"))
    console_url: str | None = Field(default=None, description=(
        "Public base URL of the console, for Discord's redirect (e.g. https://lifeline.example"
        ".org); unset = http://API_HOST:API_PORT"))
    console_session_secret: SecretStr | None = Field(default=None, description=(
        "At least 32 characters: signs the console's login state; unset = the console is "
        "off"))
    discord_oauth_url: str = Field(default=DISCORD_AUTHORIZE_URL, description=(
        "Discord's authorize page (sandbox only; leave the default in production)"))
    outbox_poll_seconds: float = Field(default=0.5, gt=0, le=60, description=(
        "How often the delivery worker looks for due outbox rows when idle"))
    outbox_lock_seconds: float = Field(default=60.0, ge=1, le=3600, description=(
        "How long a worker's claim on outbox rows lasts before another process may take "
        "them over"))
    outbox_max_attempts: int = Field(default=8, ge=1, le=100, description=(
        "Delivery attempts before an outbox row is marked failed"))
    spool_max_bytes: int = Field(default=64 * 1024 * 1024, ge=4096, le=2**30, description=(
        "Size bound of the events waiting in the ingest log (DATA_DIR/ingest); past it events "
        "are counted as dropped and their guild is reconciled in full once there is room"))
    ingest_workers: int = Field(default=4, ge=1, le=64, description=(
        "Workers that apply logged gateway events (each member's events go to one of them, "
        "in order)"))
    ingest_batch_size: int = Field(default=256, ge=1, le=10000, description=(
        "Events a worker applies together (several members per statement and commit)"))
    ingest_lag_unhealthy_seconds: float = Field(default=60.0, gt=0, le=86400, description=(
        "/healthz answers 503 when the oldest waiting gateway event is older than this"))
    dead_letter_claim_seconds: float = Field(default=300.0, ge=2, le=86400, description=(
        "How long a dead letter stays `retrying` under a replay's claim; past it (the "
        "replaying process died) it is open again"))
    retention_days: int = Field(default=30, ge=0, le=3650, description=(
        "Purge resolved/dismissed dead letters and delivered outbox rows older than this; "
        "0 keeps everything"))

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> str:
        level = str(value).strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("database_url", mode="after")
    @classmethod
    def _db_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        try:
            asyncpg_url(value.get_secret_value())
        except Exception as exc:
            raise ValueError("must be a postgresql:// URL") from exc
        return value

    @field_validator("discord_token", "api_token", mode="after")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if any(ch.isspace() for ch in value.get_secret_value()):
            raise ValueError("must not contain whitespace")
        return value

    @field_validator("api_token", mode="after")
    @classmethod
    def _api_token_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("discord_client_id", mode="after")
    @classmethod
    def _client_id(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not (value.isascii() and value.isdigit()) or not 0 < int(value) < 2**63:
            raise ValueError("must be a Discord application id (digits)")
        return value

    @field_validator("discord_client_secret", mode="after")
    @classmethod
    def _client_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if any(ch.isspace() for ch in value.get_secret_value()):
            raise ValueError("must not contain whitespace")
        return value

    @field_validator("console_session_secret", mode="after")
    @classmethod
    def _session_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @field_validator("console_url", mode="after")
    @classmethod
    def _console_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return _http_url(value)

    @field_validator("discord_oauth_url", mode="after")
    @classmethod
    def _oauth_url(cls, value: str) -> str:
        return _http_url(value) if value.strip() else DISCORD_AUTHORIZE_URL

    @field_validator("discord_api_base", "discord_gateway_url", mode="after")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError("must be an http(s):// or ws(s):// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _backoff(self) -> Settings:
        if self.transition_backoff_max_seconds < self.transition_backoff_initial_seconds:
            raise ValueError("TRANSITION_BACKOFF_MAX_SECONDS must be >= "
                             "TRANSITION_BACKOFF_INITIAL_SECONDS")
        return self

    @property
    def log_level_number(self) -> int:
        return int(getattr(logging, self.log_level))

    @property
    def oauth_client_id(self) -> str | None:
        """DISCORD_CLIENT_ID, else the bot's application id (the first part of its token is
        the bot user's id in base64, which is the application's id)."""
        if self.discord_client_id is not None:
            return self.discord_client_id
        if self.discord_token is None:
            return None
        head = self.discord_token.get_secret_value().split(".")[0]
        try:
            decoded = base64.b64decode(head + "=" * (-len(head) % 4)).decode("ascii")
        except (ValueError, UnicodeDecodeError):
            return None
        return decoded if decoded.isdigit() else None

    def console_off_reason(self) -> str | None:
        """Why the console is off (None: it is on): the settings it lacks."""
        missing = [name for name, value in (
            ("DISCORD_CLIENT_SECRET", self.discord_client_secret),
            ("CONSOLE_SESSION_SECRET", self.console_session_secret),
            ("DISCORD_CLIENT_ID (or DISCORD_TOKEN)", self.oauth_client_id)) if value is None]
        return f"the console is off: set {', '.join(missing)}" if missing else None

    @property
    def console_base_url(self) -> str:
        return self.console_url or f"http://{self.api_host}:{self.api_port}"


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or any(ch.isspace() for ch in value):
        raise ValueError("must be an http(s):// URL")
    return value.rstrip("/")


def unknown_dotenv_settings(path: Path = Path(".env")) -> list[str]:
    """One warning line for each name in the .env file that is not a setting (a typo there
    would leave its setting unset, silently), with the setting it most looks like."""
    if not path.is_file():
        return []
    known = [name.upper() for name in Settings.model_fields]
    warnings = []
    for name in dotenv_values(path):
        if name.upper() not in known:
            close = difflib.get_close_matches(name.upper(), known, n=1)
            hint = f": did you mean {close[0]}?" if close else ""
            warnings.append(f"{path} sets {name}, which is not a Lifeline setting "
                            f"(ignored){hint}")
    return warnings


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning a validation error into one line naming the setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_one_line(exc)) from None


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        name = "_".join(str(p) for p in err["loc"]).upper() or "settings"
        message = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        shown = "" if name in SECRET_SETTINGS or isinstance(value, dict) \
            else f" (got {value!r})"
        parts.append(f"{name}: {message}{shown}" if name != "SETTINGS" else message)
    return "invalid setting " + "; ".join(parts)
