"""Discord's message limits: what makes it answer 400 instead of posting."""

from __future__ import annotations

from typing import Any

from . import errors
from .models import Message

JSON = dict[str, Any]

CONTENT_MAX = 2000
EMBEDS_MAX = 10
EMBED_TOTAL_MAX = 6000
EMBED_FIELDS_MAX = 25
EMBED_LIMITS = {"title": 256, "description": 4096}
FIELD_LIMITS = {"name": 256, "value": 1024}
NONCE_MAX = 25
MENTION_IDS_MAX = 100
MENTION_PARSE = ("users", "roles", "everyone")
CHOICES_MAX = 25
CHOICE_NAME_MAX = 100
CHOICE_VALUE_MAX = 100


def _too_long(field: str, limit: int) -> errors.BadRequest:
    return errors.invalid_form(
        field, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."
    )


def _bad_length(field: str, low: int, high: int) -> errors.BadRequest:
    return errors.invalid_form(
        field, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length."
    )


def _embed_size(embed: JSON) -> int:
    size = len(embed.get("title") or "") + len(embed.get("description") or "")
    size += len((embed.get("footer") or {}).get("text") or "") + len(
        (embed.get("author") or {}).get("name") or ""
    )
    for field in embed.get("fields") or []:
        size += len(field.get("name") or "") + len(field.get("value") or "")
    return size


def validate_message(body: JSON, attachments: list[JSON]) -> None:
    """Raise the 400 Discord gives for an empty or oversized message."""
    content = body.get("content") or ""
    embeds = body.get("embeds") or []
    if not (
        content
        or embeds
        or body.get("components")
        or body.get("sticker_ids")
        or body.get("poll")
        or attachments
    ):
        raise errors.BadRequest(errors.EMPTY_MESSAGE, "Cannot send an empty message")
    if len(content) > CONTENT_MAX:
        raise _too_long("content", CONTENT_MAX)
    if len(embeds) > EMBEDS_MAX:
        raise errors.invalid_form(
            "embeds", "BASE_TYPE_MAX_LENGTH", f"Must be {EMBEDS_MAX} or fewer in length."
        )
    if body.get("allowed_mentions") is not None:
        validate_allowed_mentions(body["allowed_mentions"])
    total = 0
    for index, embed in enumerate(embeds):
        for key, limit in EMBED_LIMITS.items():
            if len(embed.get(key) or "") > limit:
                raise _too_long(f"embeds.{index}.{key}", limit)
        fields = embed.get("fields") or []
        if len(fields) > EMBED_FIELDS_MAX:
            raise errors.invalid_form(
                f"embeds.{index}.fields",
                "BASE_TYPE_MAX_LENGTH",
                f"Must be {EMBED_FIELDS_MAX} or fewer in length.",
            )
        for number, field in enumerate(fields):
            for key, limit in FIELD_LIMITS.items():
                where = f"embeds.{index}.fields.{number}.{key}"
                if field.get(key) is None:
                    raise errors.invalid_form(where, "BASE_TYPE_REQUIRED", "This field is required")
                # Discord trims fields: a blank name or value is as empty as a missing one.
                if not str(field[key]).strip() or len(str(field[key])) > limit:
                    raise _bad_length(where, 1, limit)
        total += _embed_size(embed)
    if total > EMBED_TOTAL_MAX:
        raise errors.invalid_form(
            "embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"
        )


def validate_edit(message: Message, body: JSON) -> None:
    """An edit is checked as the message it makes: the message's content, embeds and
    components with the edit's fields on top."""
    merged: JSON = {
        "content": message.content,
        "embeds": message.embeds,
        "components": message.components,
    }
    merged.update({k: v for k, v in body.items() if v is not None})
    validate_message(merged, message.attachments)


def validate_nonce(nonce: Any) -> None:
    """A message nonce is an integer or a string of at most 25 characters."""
    if nonce is None or (isinstance(nonce, int) and not isinstance(nonce, bool)):
        return
    if not isinstance(nonce, str):
        raise errors.invalid_form(
            "nonce", "BASE_TYPE_BAD_TYPE", "Must be an integer or a string."
        )
    if len(nonce) > NONCE_MAX:
        raise _too_long("nonce", NONCE_MAX)


def validate_allowed_mentions(allowed: Any) -> None:
    """``parse`` and an explicit id list of the same kind exclude each other; 100 ids at most."""
    if not isinstance(allowed, dict):
        raise errors.invalid_form(
            "allowed_mentions", "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType"
        )
    parse = allowed.get("parse") or []
    if not isinstance(parse, list):
        raise errors.invalid_form(
            "allowed_mentions.parse", "BASE_TYPE_BAD_TYPE", "Must be an array."
        )
    for index, kind in enumerate(parse):
        if kind not in MENTION_PARSE:
            raise errors.invalid_form(
                f"allowed_mentions.parse.{index}",
                "BASE_TYPE_CHOICES",
                f"Value must be one of {MENTION_PARSE}.",
            )
    for kind in ("users", "roles"):
        ids = allowed.get(kind)
        if ids is None:
            continue
        if not isinstance(ids, list):
            raise errors.invalid_form(
                f"allowed_mentions.{kind}", "BASE_TYPE_BAD_TYPE", "Must be an array."
            )
        if len(ids) > MENTION_IDS_MAX:
            raise _too_long(f"allowed_mentions.{kind}", MENTION_IDS_MAX)
        if ids and kind in parse:
            raise errors.invalid_form(
                "allowed_mentions",
                "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
            )


def validate_choices(data: JSON) -> None:
    """An autocomplete answer: at most 25 choices, names 1..100, string values at most 100."""
    choices = data.get("choices")
    if choices is None:
        return
    if not isinstance(choices, list):
        raise errors.invalid_form("data.choices", "BASE_TYPE_BAD_TYPE", "Must be an array.")
    if len(choices) > CHOICES_MAX:
        raise _too_long("data.choices", CHOICES_MAX)
    for index, choice in enumerate(choices):
        name = choice.get("name") if isinstance(choice, dict) else None
        if not isinstance(name, str) or not 1 <= len(name) <= CHOICE_NAME_MAX:
            raise _bad_length(f"data.choices.{index}.name", 1, CHOICE_NAME_MAX)
        value = choice.get("value")
        if isinstance(value, str) and len(value) > CHOICE_VALUE_MAX:
            raise _too_long(f"data.choices.{index}.value", CHOICE_VALUE_MAX)
