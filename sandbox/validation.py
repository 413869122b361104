"""Discord's message limits: what makes it answer 400 instead of posting."""

from __future__ import annotations

from typing import Any

from . import errors

JSON = dict[str, Any]

CONTENT_MAX = 2000
EMBEDS_MAX = 10
EMBED_TOTAL_MAX = 6000
EMBED_FIELDS_MAX = 25
EMBED_LIMITS = {"title": 256, "description": 4096}
FIELD_LIMITS = {"name": 256, "value": 1024}


def _too_long(field: str, limit: int) -> errors.BadRequest:
    return errors.invalid_form(
        field, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."
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
                if len(field.get(key) or "") > limit:
                    raise _too_long(f"embeds.{index}.fields.{number}.{key}", limit)
        total += _embed_size(embed)
    if total > EMBED_TOTAL_MAX:
        raise errors.invalid_form(
            "embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"
        )
