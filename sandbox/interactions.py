"""Interactions: injecting them (slash command, autocomplete, button) and answering them.

Every callback, follow-up and edit the bot makes lands on the interaction's
:class:`~sandbox.interaction_handle.InteractionHandle`, what a test holds after
injecting it (``await handle.wait_reply()`` / ``wait_message()`` wait for them).

Discord rules kept here: the initial response must come within
``interaction_ack_timeout`` (3 s; later it is 404 code 10062), only once
(400 code 40060), follow-ups and edits with the token only for
``interaction_token_ttl`` (15 minutes; later 401 code 50027), autocomplete
answers of at most 25 choices (names 1..100 characters, string values at most
100), follow-ups need an acknowledged interaction, the first
follow-up after a deferral ("thinking") replaces the thinking message, and
ephemeral messages never reach the gateway.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from . import errors, payloads
from .commands import build_options
from .core import Core
from .errors import CommandRefused, NoGatewaySession
from .interaction_handle import InteractionHandle, Reply
from .models import Channel, Guild, InteractionRef, Message, MessageFlag
from .validation import validate_choices, validate_edit, validate_message

JSON = dict[str, Any]

APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
AUTOCOMPLETE = 4

(
    PONG,
    CHANNEL_MESSAGE,
    DEFERRED_MESSAGE,
    DEFERRED_UPDATE,
    UPDATE_MESSAGE,
    AUTOCOMPLETE_RESULT,
    MODAL,
) = 1, 4, 5, 6, 7, 8, 9

MESSAGE_TYPE_DEFAULT = 0
MESSAGE_TYPE_CHAT_INPUT = 20


class Interactions:
    """Builds interactions, dispatches them, and applies the bot's answers."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.by_id: dict[int, InteractionHandle] = {}
        self.by_token: dict[str, InteractionHandle] = {}

    @property
    def all(self) -> list[InteractionHandle]:
        return list(self.by_id.values())

    # -- injecting -------------------------------------------------------
    def _default_channel(self, guild: Guild) -> Channel:
        if guild.system_channel_id is not None and guild.system_channel_id in guild.channels:
            return guild.channels[guild.system_channel_id]
        for channel in guild.channels.values():
            if channel.type == 0:
                return channel
        raise CommandRefused(f"guild {guild.id} has no text channel to run a command in")

    def _send(
        self,
        guild: Guild,
        channel: Channel | None,
        user_id: int,
        kind: int,
        name: str,
        data: JSON,
        source: Message | None,
    ) -> InteractionHandle:
        core = self.core
        if not core.gateway.sessions_for_guild(guild.id):
            raise NoGatewaySession(f"no bot session would receive events of guild {guild.id}")
        channel = channel or self._default_channel(guild)
        member = guild.member(user_id)
        handle = InteractionHandle(
            id=core.world.ids.next(),
            token=f"aW50ZXJhY3Rpb24.{secrets.token_urlsafe(48)}",
            type=kind,
            name=name,
            guild_id=guild.id,
            channel_id=channel.id,
            user_id=user_id,
            payload={},
            core=core,
            created_at=core.clock.now(),
            source_message=source,
        )
        handle.payload = payloads.interaction(
            interaction_id=handle.id,
            token=handle.token,
            application_id=core.application_id,
            type=kind,
            data=data,
            guild=guild,
            channel_obj=channel,
            invoker=member,
            member_permissions=guild.channel_permissions(channel, user_id),
            app_permissions=guild.channel_permissions(channel, core.bot.id),
            locale="en-US",
            message_payload=None if source is None else core.message_payload(source),
        )
        self.by_id[handle.id] = handle
        self.by_token[handle.token] = handle
        core.gateway.dispatch("INTERACTION_CREATE", handle.payload, guild_id=guild.id)
        return handle

    def command(
        self,
        guild: Guild,
        user_id: int,
        command_line: str,
        options: Mapping[str, Any],
        *,
        channel: Channel | None,
        focused: str | None = None,
    ) -> InteractionHandle:
        words = command_line.strip().lstrip("/").split()
        if not words:
            raise CommandRefused("empty command")
        command = self.core.commands.find(words[0], guild.id)
        if command is None:
            raise CommandRefused(f"/{words[0]} is not synced globally or to guild {guild.id}")
        guild.member(user_id)
        if not self.core.commands.visible_to(command, guild, user_id):
            raise CommandRefused(
                f"/{words[0]} is hidden from user {user_id} (default_member_permissions)"
            )
        target_channel = channel or self._default_channel(guild)
        built, refs = build_options(
            command, words[1:], options, guild=guild, world=self.core.world, focused=focused
        )
        resolved = payloads.resolved(
            guild,
            target_channel,
            user_ids=refs.users,
            role_ids=refs.roles,
            channel_ids=refs.channels,
            users=self.core.world.users,
            channels=self.core.world.channels,
        )
        data = payloads.command_data(command, built, resolved)
        kind = APPLICATION_COMMAND if focused is None else AUTOCOMPLETE
        return self._send(guild, target_channel, user_id, kind, " ".join(words), data, None)

    def button(self, message: Message, custom_id: str, user_id: int) -> InteractionHandle:
        component = message.find_component(custom_id)
        if component is None:
            raise CommandRefused(
                f"message {message.id} has no component {custom_id!r}; "
                f"it has {message.custom_ids()}"
            )
        if component.get("disabled"):
            raise CommandRefused(f"component {custom_id!r} is disabled")
        if message.guild_id is None:
            raise CommandRefused("the sandbox only presses buttons in guild channels")
        if (
            message.ephemeral
            and message.interaction is not None
            and message.interaction.user.id != user_id
        ):
            raise CommandRefused("only the user who got an ephemeral message can press its buttons")
        guild = self.core.world.guild(message.guild_id)
        channel = self.core.world.channel(message.channel_id)
        data = payloads.component_data(custom_id, int(component.get("type", 2)))
        return self._send(guild, channel, user_id, MESSAGE_COMPONENT, custom_id, data, message)

    # -- answering -------------------------------------------------------
    def handle_for(self, interaction_id: int, token: str) -> InteractionHandle:
        handle = self.by_token.get(token)
        if handle is None or handle.id != interaction_id:
            raise errors.unknown("interaction", errors.UNKNOWN_INTERACTION)
        return handle

    def webhook_handle(self, application_id: int, token: str) -> InteractionHandle:
        handle = self.by_token.get(token)
        if handle is None or application_id != self.core.application_id or not handle.acknowledged:
            raise errors.unknown("Webhook", errors.UNKNOWN_WEBHOOK)
        if self.core.clock.now() - handle.created_at > self.core.config.interaction_token_ttl:
            raise errors.Unauthorized(errors.INVALID_WEBHOOK_TOKEN, "Invalid Webhook Token")
        return handle

    def _new_message(
        self, handle: InteractionHandle, data: JSON, extra_flags: int, attachments: list[JSON]
    ) -> Message:
        core = self.core
        channel = core.world.channels[handle.channel_id]
        flags = (int(data.get("flags") or 0) & MessageFlag.EPHEMERAL) | extra_flags
        invoker = core.world.users[handle.user_id]
        return core.create_message(
            channel,
            core.bot,
            content=str(data.get("content") or ""),
            embeds=list(data.get("embeds") or []),
            components=list(data.get("components") or []),
            attachments=attachments,
            allowed_mentions=data.get("allowed_mentions"),
            flags=flags,
            type=MESSAGE_TYPE_CHAT_INPUT
            if handle.type == APPLICATION_COMMAND
            else MESSAGE_TYPE_DEFAULT,
            webhook_id=core.application_id,
            application_id=core.application_id,
            interaction=InteractionRef(handle.id, handle.type, handle.name, invoker),
        )

    def respond(self, handle: InteractionHandle, body: JSON, attachments: list[JSON]) -> JSON:
        """Apply ``POST /interactions/{id}/{token}/callback``; returns the with_response answer."""
        if handle.acknowledged:
            raise errors.BadRequest(
                errors.ALREADY_ACKNOWLEDGED, "Interaction has already been acknowledged."
            )
        if self.core.clock.now() - handle.created_at > self.core.config.interaction_ack_timeout:
            raise errors.unknown("interaction", errors.UNKNOWN_INTERACTION)
        kind = body.get("type")
        data = body.get("data") or {}
        component_only = kind in (DEFERRED_UPDATE, UPDATE_MESSAGE)
        if component_only and handle.type != MESSAGE_COMPONENT:
            raise errors.invalid_form(
                "type", "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid interaction response type"
            )
        if (kind == AUTOCOMPLETE_RESULT) != (handle.type == AUTOCOMPLETE):
            raise errors.invalid_form(
                "type", "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid interaction response type"
            )
        message: Message | None = None
        if kind == CHANNEL_MESSAGE:
            validate_message(data, attachments)
            message = handle.original = self._new_message(handle, data, 0, attachments)
        elif kind == DEFERRED_MESSAGE:
            message = handle.original = self._new_message(
                handle, {"flags": data.get("flags")}, MessageFlag.LOADING, []
            )
        elif kind == DEFERRED_UPDATE:
            handle.original = handle.source_message
        elif kind == UPDATE_MESSAGE:
            assert handle.source_message is not None
            validate_edit(handle.source_message, data)
            message = handle.original = self.core.edit_message(handle.source_message, data)
        elif kind == AUTOCOMPLETE_RESULT:
            validate_choices(data)
            handle.choices = list(data.get("choices") or [])
        elif kind == MODAL:
            handle.modal = data
        elif kind != PONG:
            raise errors.invalid_form(
                "type", "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid interaction response type"
            )
        handle.replies.append(Reply(int(kind), data, message, at=self.core.clock.now()))
        self.core.notifier.notify()
        return payloads.interaction_callback(
            interaction_id=handle.id,
            interaction_type=handle.type,
            response_type=int(kind),
            message_payload=None if message is None else self._message_payload(message),
            ephemeral=bool(message is not None and message.ephemeral),
            loading=kind == DEFERRED_MESSAGE,
        )

    def _message_payload(self, message: Message) -> JSON:
        return self.core.message_payload(message)

    def followup(self, handle: InteractionHandle, body: JSON, attachments: list[JSON]) -> JSON:
        validate_message(body, attachments)
        original = handle.original
        if original is not None and original.loading and original is not handle.source_message:
            # The first follow-up after a deferral replaces the "thinking" message.
            message = self.core.edit_message(original, body)
        else:
            message = self._new_message(handle, body, 0, attachments)
            handle.followups.append(message)
        self.core.notifier.notify()
        return self._message_payload(message)

    def target(self, handle: InteractionHandle, message_id: str) -> Message:
        if message_id == "@original":
            if handle.original is None or handle.original.deleted:
                raise errors.unknown("Message", errors.UNKNOWN_MESSAGE)
            return handle.original
        message = next(
            (m for m in handle.followups if str(m.id) == message_id and not m.deleted), None
        )
        if message is None:
            raise errors.unknown("Message", errors.UNKNOWN_MESSAGE)
        return message

    def edit(self, handle: InteractionHandle, message_id: str, body: JSON) -> JSON:
        message = self.target(handle, message_id)
        validate_edit(message, body)
        self.core.edit_message(message, body)
        return self._message_payload(message)

    def fetch(self, handle: InteractionHandle, message_id: str) -> JSON:
        return self._message_payload(self.target(handle, message_id))

    def delete(self, handle: InteractionHandle, message_id: str) -> None:
        self.core.delete_message(self.target(handle, message_id))
