"""What a test reads back from a sandbox, and how it waits for it.

:class:`ReadBack` is the half of :class:`~sandbox.scenario.Sandbox` that
only looks: messages in channels, REST calls, unknown routes, role changes,
nonce hits, gateway sessions and interactions, plus waits that wake on every
sandbox change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from .core import Core
from .gateway import GatewaySession
from .interaction_handle import InteractionHandle
from .interactions import Interactions
from .models import Channel, Guild, Message
from .oauth import OAuth, Token
from .records import Call, NonceHit, RoleChange

T = TypeVar("T")
GuildRef = Guild | int
ChannelRef = Channel | int | str


class ReadBack:
    core: Core
    interactions: Interactions

    # -- lookups ---------------------------------------------------------
    def guild(self, ref: GuildRef) -> Guild:
        return ref if isinstance(ref, Guild) else self.core.world.guild(int(ref))

    def channel(self, ref: ChannelRef, guild: GuildRef | None = None) -> Channel:
        """A channel by object, id, or name (name needs ``guild``)."""
        if isinstance(ref, Channel):
            return ref
        if isinstance(ref, str) and not ref.isdigit():
            if guild is None:
                raise ValueError("a channel name needs its guild")
            return self.guild(guild).channel_named(ref)
        return self.core.world.channel(int(ref))

    # -- OAuth2 ------------------------------------------------------------
    @property
    def oauth(self) -> OAuth:
        """The OAuth2 side: ``oauth.authorize(user_id, redirect_uri, "identify")`` logs a
        user in with no browser (``.redirect_url`` of the code it answers is the callback)."""
        return self.core.oauth

    @property
    def oauth_tokens(self) -> list[Token]:
        """Every OAuth2 token issued, in order; ``revoked`` says why one stopped working
        (``"revoke"``, ``"refresh"``, ``"code_reuse"``), ``live(now)`` whether it works."""
        return list(self.core.oauth.tokens)

    # -- gateway sessions ------------------------------------------------
    @property
    def sessions(self) -> list[GatewaySession]:
        """Sessions that are live or resumable."""
        return list(self.core.gateway.sessions.values())

    @property
    def connected_sessions(self) -> list[GatewaySession]:
        """Sessions with a live websocket now."""
        return self.core.gateway.live_sessions()

    @property
    def all_sessions(self) -> list[GatewaySession]:
        """Every session ever identified, including ended ones."""
        return list(self.core.gateway.history)

    async def wait_for_sessions(
        self,
        count: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[GatewaySession]:
        """Wait until ``count`` sessions are connected."""

        def connected() -> list[GatewaySession] | None:
            live = self.core.gateway.live_sessions()
            return live if len(live) >= count else None

        return await self.wait_until(connected, timeout, what=f"{count} gateway session(s)")

    # -- reading back ----------------------------------------------------
    def messages(
        self, channel: ChannelRef, guild: GuildRef | None = None, *, include_ephemeral: bool = False
    ) -> list[Message]:
        """Messages in a channel, oldest first."""
        found = self.core.world.channel_messages(self.channel(channel, guild).id)
        return [m for m in found if include_ephemeral or not m.ephemeral]

    @property
    def calls(self) -> list[Call]:
        return self.core.recorder.calls

    def calls_to(self, method: str, route: str) -> list[Call]:
        return self.core.recorder.calls_to(method, route)

    @property
    def unknown_routes(self) -> list[Call]:
        return self.core.recorder.unknown_routes

    @property
    def role_changes(self) -> list[RoleChange]:
        return self.core.recorder.role_changes

    @property
    def duplicates_prevented(self) -> list[NonceHit]:
        return self.core.recorder.duplicates_prevented

    @property
    def interaction_handles(self) -> list[InteractionHandle]:
        return self.interactions.all

    async def wait_until(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        what: str = "",
    ) -> T:
        """First truthy ``predicate()``, re-checked on every sandbox change."""
        return await self.core.notifier.wait_until(predicate, timeout, what=what)

    async def wait_for_message(
        self,
        channel: ChannelRef,
        predicate: Callable[[Message], bool] | None = None,
        *,
        guild: GuildRef | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> Message:
        target = self.channel(channel, guild)

        def found() -> Message | None:
            return next(
                (m for m in self.messages(target) if predicate is None or predicate(m)), None
            )

        return await self.wait_until(found, timeout, what=f"a message in #{target.name}")
