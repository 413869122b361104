"""REST routes for channels, messages, interaction callbacks and interaction webhooks.

``POST /channels/{id}/messages`` is rate limited per channel (see
:mod:`sandbox.limits`), needs VIEW_CHANNEL (else 403 code 50001) and
SEND_MESSAGES (else 403 code 50013) in the channel, answers 404 code 10003
for a deleted channel, enforces Discord's content and embed limits, drops
embeds without EMBED_LINKS (a message of embeds only is then 403 code 50013),
and honours ``nonce`` (an integer or at most 25 characters) + ``enforce_nonce`` by
returning the author's earlier message, whatever channel it went to.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import errors, payloads
from .core import Core
from .errors import ApiError
from .interactions import Interactions
from .models import Channel, ChannelType
from .permissions import Perm
from .records import NonceHit
from .rest import _int
from .server import Server, body_of, json_response, no_content, rate_limited_body
from .validation import validate_edit, validate_message, validate_nonce

JSON = dict[str, Any]

POST_MESSAGE = "POST /channels/{channel_id}/messages"
SUPPRESS_EMBEDS = 1 << 2
SUPPRESS_NOTIFICATIONS = 1 << 12
MESSAGE_TYPE_REPLY = 19


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true")


class MessageRoutes:
    def __init__(self, core: Core, interactions: Interactions) -> None:
        self.core = core
        self.world = core.world
        self.interactions = interactions

    def register(self, server: Server) -> None:
        add = server.add_api_route
        add("GET", "/channels/{channel_id}", self.get_channel)
        add("GET", "/channels/{channel_id}/messages", self.list_messages)
        add("POST", "/channels/{channel_id}/messages", self.post_message)
        add("POST", "/channels/{channel_id}/typing", self.typing)
        add("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message)
        add("PATCH", "/channels/{channel_id}/messages/{message_id}", self.edit_message)
        add("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message)
        add(
            "POST",
            "/interactions/{interaction_id}/{interaction_token}/callback",
            self.interaction_callback,
        )
        add("POST", "/webhooks/{application_id}/{interaction_token}", self.followup)
        add(
            "GET",
            "/webhooks/{application_id}/{interaction_token}/messages/{message_id}",
            self.get_webhook_message,
        )
        add(
            "PATCH",
            "/webhooks/{application_id}/{interaction_token}/messages/{message_id}",
            self.edit_webhook_message,
        )
        add(
            "DELETE",
            "/webhooks/{application_id}/{interaction_token}/messages/{message_id}",
            self.delete_webhook_message,
        )

    # -- channels --------------------------------------------------------
    def _bot_permissions(self, channel: Channel) -> int:
        if channel.guild_id is None:
            return int(
                Perm.VIEW_CHANNEL
                | Perm.SEND_MESSAGES
                | Perm.READ_MESSAGE_HISTORY
                | Perm.EMBED_LINKS
            )
        guild = self.world.guild(channel.guild_id)
        return guild.channel_permissions(channel, self.core.bot.id)

    def _require(self, channel: Channel, wanted: int) -> None:
        perms = self._bot_permissions(channel)
        if not perms & Perm.VIEW_CHANNEL:
            raise errors.missing_access()
        if perms & wanted != wanted:
            raise errors.missing_permissions()

    async def get_channel(self, request: web.Request) -> web.Response:
        channel = self.world.channel(_int(request, "channel_id"))
        if channel.type == ChannelType.DM:
            recipient = (
                None if channel.recipient_id is None else self.world.users.get(channel.recipient_id)
            )
            return json_response(payloads.channel(channel, recipient=recipient))
        self._require(channel, 0)
        return json_response(payloads.channel(channel))

    async def list_messages(self, request: web.Request) -> web.Response:
        channel = self.world.channel(_int(request, "channel_id"))
        self._require(channel, Perm.READ_MESSAGE_HISTORY)
        limit = max(1, min(int(request.query.get("limit", "50")), 100))
        found = [m for m in self.world.channel_messages(channel.id) if not m.ephemeral]
        if "before" in request.query:
            found = [m for m in found if m.id < int(request.query["before"])]
        if "after" in request.query:
            found = [m for m in found if m.id > int(request.query["after"])]
            found = found[:limit]
        found = sorted(found, key=lambda m: m.id, reverse=True)[:limit]
        return json_response([self.core.message_payload(m) for m in found])

    async def post_message(self, request: web.Request) -> web.Response:
        channel_id = _int(request, "channel_id")
        decision = self.core.rate_limiter.hit(POST_MESSAGE, str(channel_id))
        headers = decision.headers()
        if not decision.allowed:
            return json_response(
                rate_limited_body(decision.reset_after), status=429, headers=headers
            )
        try:
            return json_response(self._create(request, channel_id), headers=headers)
        except ApiError as exc:
            return json_response(exc.body(), status=exc.status, headers=headers)

    def _create(self, request: web.Request, channel_id: int) -> JSON:
        channel = self.world.channel(channel_id)
        body = body_of(request)
        data = body.obj
        self._require(channel, Perm.SEND_MESSAGES)
        validate_message(data, body.attachments)
        validate_nonce(data.get("nonce"))
        if data.get("embeds") and not self._bot_permissions(channel) & Perm.EMBED_LINKS:
            # Discord without Embed Links: embeds are dropped, and a message that was
            # nothing but embeds is refused.
            data = {**data, "embeds": []}
            if not (data.get("content") or data.get("components") or data.get("sticker_ids")
                    or data.get("poll") or body.attachments):
                raise errors.missing_permissions()
        nonce = data.get("nonce")
        author = self.core.bot
        earlier = self.core.check_nonce(author.id, nonce, bool(data.get("enforce_nonce")))
        if earlier is not None and nonce is not None:
            self.core.recorder.nonce_hit(NonceHit(channel.id, nonce, earlier.id))
            return self.core.message_payload(earlier)
        reference = data.get("message_reference") or {}
        reference_id = int(reference["message_id"]) if reference.get("message_id") else None
        if (
            reference_id is not None
            and reference_id not in self.world.messages
            and reference.get("fail_if_not_exists", True)
        ):
            raise errors.invalid_form(
                "message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
            )
        message = self.core.create_message(
            channel,
            author,
            content=str(data.get("content") or ""),
            embeds=list(data.get("embeds") or []),
            components=list(data.get("components") or []),
            attachments=body.attachments,
            flags=int(data.get("flags") or 0) & (SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS),
            nonce=nonce,
            allowed_mentions=data.get("allowed_mentions"),
            reference_id=reference_id if reference_id in self.world.messages else None,
            type=MESSAGE_TYPE_REPLY if reference_id in self.world.messages else 0,
        )
        if data.get("enforce_nonce"):
            self.core.remember_nonce(author.id, nonce, message)
        return self.core.message_payload(message)

    async def typing(self, request: web.Request) -> web.Response:
        self._require(self.world.channel(_int(request, "channel_id")), Perm.SEND_MESSAGES)
        return no_content()

    async def get_message(self, request: web.Request) -> web.Response:
        channel = self.world.channel(_int(request, "channel_id"))
        self._require(channel, Perm.READ_MESSAGE_HISTORY)
        message = self.world.message(_int(request, "message_id"))
        if message.channel_id != channel.id or message.ephemeral:
            raise errors.unknown("Message", errors.UNKNOWN_MESSAGE)
        return json_response(self.core.message_payload(message))

    async def edit_message(self, request: web.Request) -> web.Response:
        channel = self.world.channel(_int(request, "channel_id"))
        message = self.world.message(_int(request, "message_id"))
        if message.channel_id != channel.id:
            raise errors.unknown("Message", errors.UNKNOWN_MESSAGE)
        if message.author.id != self.core.bot.id:
            raise errors.Forbidden(50005, "Cannot edit a message authored by another user")
        body = body_of(request).obj
        validate_edit(message, body)
        return json_response(self.core.message_payload(self.core.edit_message(message, body)))

    async def delete_message(self, request: web.Request) -> web.Response:
        channel = self.world.channel(_int(request, "channel_id"))
        message = self.world.message(_int(request, "message_id"))
        if message.channel_id != channel.id:
            raise errors.unknown("Message", errors.UNKNOWN_MESSAGE)
        if message.author.id != self.core.bot.id:
            self._require(channel, Perm.MANAGE_MESSAGES)
        self.core.delete_message(message)
        return no_content()

    # -- interactions ----------------------------------------------------
    async def interaction_callback(self, request: web.Request) -> web.Response:
        handle = self.interactions.handle_for(
            _int(request, "interaction_id"), request.match_info["interaction_token"]
        )
        body = body_of(request)
        answer = self.interactions.respond(handle, body.obj, body.attachments)
        if _truthy(request.query.get("with_response")):
            return json_response(answer)
        return no_content()

    def _webhook(self, request: web.Request) -> Any:
        return self.interactions.webhook_handle(
            _int(request, "application_id"), request.match_info["interaction_token"]
        )

    async def followup(self, request: web.Request) -> web.Response:
        handle = self._webhook(request)
        body = body_of(request)
        message = self.interactions.followup(handle, body.obj, body.attachments)
        if _truthy(request.query.get("wait")):
            return json_response(message)
        return no_content()

    async def get_webhook_message(self, request: web.Request) -> web.Response:
        handle = self._webhook(request)
        return json_response(self.interactions.fetch(handle, request.match_info["message_id"]))

    async def edit_webhook_message(self, request: web.Request) -> web.Response:
        handle = self._webhook(request)
        return json_response(
            self.interactions.edit(handle, request.match_info["message_id"], body_of(request).obj)
        )

    async def delete_webhook_message(self, request: web.Request) -> web.Response:
        self.interactions.delete(self._webhook(request), request.match_info["message_id"])
        return no_content()
