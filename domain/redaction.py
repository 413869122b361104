"""Secrets never reach logs, the database or Discord: every stored error text passes here."""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager

MAX_ERROR_LENGTH = 2000

_PATTERNS = (
    # Discord bot tokens: base64 user id . timestamp . hmac
    re.compile(r"[MNO][A-Za-z\d_-]{23,}\.[A-Za-z\d_-]{6}\.[A-Za-z\d_-]{27,}"),
    re.compile(r"(?i)(bearer|bot)\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)(password|passwd|pwd|token|secret|api_key)=([^\s&;,]+)"),
    re.compile(r"(?i)(\w+://[^:/\s@]*:)([^@\s]+)(@)"),
)

_lock = threading.Lock()
_known_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a configured secret (bot token, API token, DB password) to scrub it anywhere."""
    if value and len(value) >= 4:
        with _lock:
            _known_secrets.add(value)


@contextmanager
def isolated_secrets() -> Iterator[None]:
    """Inside the block only the secrets registered in it are known; the process's own come
    back after it (tests that assert exact redactions)."""
    with _lock:
        saved = set(_known_secrets)
        _known_secrets.clear()
    try:
        yield
    finally:
        with _lock:
            _known_secrets.clear()
            _known_secrets.update(saved)


def scrub(text: str) -> str:
    """For free text people type (notes, reasons): remove configured secrets and anything
    shaped like a Discord token or a bearer credential, leave the rest as written."""
    with _lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    text = _PATTERNS[0].sub("[redacted]", text)
    return _PATTERNS[1].sub(lambda m: f"{m.group(1)} [redacted]", text)


def redact(text: str, limit: int = MAX_ERROR_LENGTH) -> str:
    with _lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    text = _PATTERNS[0].sub("[redacted]", text)
    text = _PATTERNS[1].sub(lambda m: f"{m.group(1)} [redacted]", text)
    text = _PATTERNS[2].sub(lambda m: f"{m.group(1)}=[redacted]", text)
    text = _PATTERNS[3].sub(lambda m: f"{m.group(1)}[redacted]{m.group(3)}", text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


class RedactingFilter:
    """A logging filter: every record leaves with secrets scrubbed (third-party debug logs
    such as discord.py's request bodies included)."""

    def filter(self, record: object) -> bool:
        import logging

        assert isinstance(record, logging.LogRecord)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler
            return True
        cleaned = redact(message, limit=1_000_000)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


# Bidirectional-text controls: they reorder what follows them, so a note or reason could make
# a log line read differently from what was written.
_BIDI_CONTROLS = dict.fromkeys(map(ord, "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                                        "\u2066\u2067\u2068\u2069"))


def without_bidi_controls(text: str) -> str:
    return text.translate(_BIDI_CONTROLS)


def is_blank(text: str) -> bool:
    """Nothing a person could read: whitespace and invisible format characters (zero-width
    spaces, joiners, bidi controls) only."""
    return not "".join(c for c in text if unicodedata.category(c) != "Cf").strip()
