"""What a test holds after injecting an interaction: an :class:`InteractionHandle`.

Every callback, follow-up and edit the bot makes for the interaction lands on its
handle (:mod:`sandbox.interactions` applies them), and ``await handle.wait_reply()`` /
``wait_message()`` / ``wait_followups()`` / ``wait_choices()`` wait for them. A
:class:`Reply` is one accepted interaction callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .core import Core
from .models import Message

JSON = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class Reply:
    """One accepted interaction callback."""

    type: int
    data: JSON
    message: Message | None
    # When the sandbox accepted it (config.clock, like InteractionHandle.created_at).
    at: float


@dataclass(eq=False)
class InteractionHandle:
    id: int
    token: str
    type: int
    name: str
    guild_id: int
    channel_id: int
    user_id: int
    payload: JSON
    core: Core
    # When it was created, on config.clock: the 3-second and 15-minute windows start here.
    created_at: float
    source_message: Message | None = None
    replies: list[Reply] = field(default_factory=list)
    original: Message | None = None
    followups: list[Message] = field(default_factory=list)
    choices: list[JSON] | None = None
    modal: JSON | None = None

    @property
    def acknowledged(self) -> bool:
        return bool(self.replies)

    @property
    def response_type(self) -> int | None:
        return self.replies[0].type if self.replies else None

    @property
    def messages(self) -> list[Message]:
        """Messages the bot showed for this interaction, original first."""
        first = (
            [] if self.original is None or self.original is self.source_message else [self.original]
        )
        return [m for m in [*first, *self.followups] if not m.deleted]

    async def wait_until(
        self,
        predicate: Callable[[InteractionHandle], T | None],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> T:
        return await self.core.notifier.wait_until(
            lambda: predicate(self),
            timeout,
            what=f"interaction {self.name!r}: {getattr(predicate, '__name__', 'condition')}",
        )

    async def wait_reply(self, timeout: float = 5.0) -> Reply:  # noqa: ASYNC109
        """The initial response (message, deferral, update, autocomplete or modal)."""

        def first_reply(handle: InteractionHandle) -> Reply | None:
            return handle.replies[0] if handle.replies else None

        return await self.wait_until(first_reply, timeout)

    async def wait_message(self, timeout: float = 5.0) -> Message:  # noqa: ASYNC109
        """The first message the user can read: a non-loading original, or else a follow-up."""

        def readable(handle: InteractionHandle) -> Message | None:
            return next((m for m in handle.messages if not m.loading), None)

        return await self.wait_until(readable, timeout)

    async def wait_followups(self, count: int = 1, timeout: float = 5.0) -> list[Message]:  # noqa: ASYNC109
        if count <= 0:
            return list(self.followups)

        def enough(handle: InteractionHandle) -> list[Message] | None:
            return list(handle.followups) if len(handle.followups) >= count else None

        return await self.wait_until(enough, timeout)

    async def wait_choices(self, timeout: float = 5.0) -> list[JSON]:  # noqa: ASYNC109
        # An empty list of choices is an answer too: wait on the reply, not on its truthiness.
        def answered(handle: InteractionHandle) -> Reply | None:
            return handle.replies[0] if handle.choices is not None else None

        await self.wait_until(answered, timeout)
        return list(self.choices or [])
