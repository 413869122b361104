"""Errors the sandbox raises, each carrying the answer real Discord would give.

Route handlers turn an :class:`ApiError` into its HTTP status and JSON body;
the scenario API lets it propagate to the test, like a refusal in the client.
"""

from __future__ import annotations

from typing import Any


class SandboxError(Exception):
    """Base class for everything the sandbox raises on purpose."""


class ApiError(SandboxError):
    """A refusal with Discord's status, error code and message."""

    status = 400

    def __init__(self, code: int, message: str, *, errors: dict[str, Any] | None = None) -> None:
        super().__init__(f"{self.status} {message} (code {code})")
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


# Discord's JSON error codes used by the sandbox.
UNKNOWN_CHANNEL = 10003
UNKNOWN_GUILD = 10004
UNKNOWN_MEMBER = 10007
UNKNOWN_MESSAGE = 10008
UNKNOWN_ROLE = 10011
UNKNOWN_USER = 10013
UNKNOWN_WEBHOOK = 10015
UNKNOWN_BAN = 10026
UNKNOWN_INTERACTION = 10062
UNKNOWN_APPLICATION_COMMAND = 10063
ALREADY_ACKNOWLEDGED = 40060
EMPTY_MESSAGE = 50006
INVALID_WEBHOOK_TOKEN = 50027
MISSING_ACCESS = 50001
MISSING_PERMISSIONS = 50013
INVALID_FORM_BODY = 50035


def unknown(kind: str, code: int) -> NotFound:
    return NotFound(code, f"Unknown {kind}")


def missing_permissions() -> Forbidden:
    return Forbidden(MISSING_PERMISSIONS, "Missing Permissions")


def missing_access() -> Forbidden:
    return Forbidden(MISSING_ACCESS, "Missing Access")


def invalid_form(field: str, code: str, message: str) -> BadRequest:
    return BadRequest(
        INVALID_FORM_BODY,
        "Invalid Form Body",
        errors={field: {"_errors": [{"code": code, "message": message}]}},
    )


class CommandRefused(SandboxError):
    """Discord would not let this member run this command (hidden, unknown, bad options)."""


class NoGatewaySession(SandboxError):
    """No bot connection (live or resumable) would receive the event."""
