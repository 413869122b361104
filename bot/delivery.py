"""The outbox's Discord port, implemented with discord.py (its own 429 handling included).

What a row looks like on Discord (lines, embeds, limits, the nonce) is bot/formatting.py's.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
import discord

from bot import formatting
from domain.outbox import Claimed, DeliveryError, Receipt
from domain.vocabulary import DeliveryCause, OutboxKind

UNKNOWN_CHANNEL = 10003
UNKNOWN_MEMBER = 10007
UNKNOWN_ROLE = 10011
MISSING_ACCESS = 50001
MISSING_PERMISSIONS = 50013
# A neutral grey bar for mirror embeds.
MIRROR_COLOUR = discord.Colour.greyple()


class DiscordDeliverer:
    def __init__(self, client: discord.Client,
                 links: formatting.ConsoleLinks | None = None) -> None:
        self.client = client
        self.links = links  # with the console on: mirrored lines link to its pages

    def max_batch(self, kind: OutboxKind) -> int:
        return formatting.max_batch(kind)

    def take(self, rows: Sequence[Claimed]) -> int:
        return formatting.take(rows, self.links)

    async def deliver(self, rows: Sequence[Claimed]) -> Receipt:
        head = rows[0]
        if head.kind is OutboxKind.MIRROR:
            try:
                post = formatting.mirror_post(rows, self.links)
            except formatting.UnreadableRecord as exc:
                raise DeliveryError(f"unreadable mirror record: {exc}", retryable=False,
                                    cause=DeliveryCause.UNREADABLE_RECORD) from exc
            if post.channel_id is None:
                raise DeliveryError("mirror row without a channel", retryable=False,
                                    whole_lane=True, cause=DeliveryCause.NO_LOG_CHANNEL)
            try:
                return await self.post_embeds(post.channel_id, post.descriptions, post.nonce)
            except DeliveryError as exc:
                if not exc.retryable:
                    exc.cause = self.channel_cause(head.guild_id, post.channel_id, exc.code)
                raise
        payload = head.payload
        return await self.sync_role(head.guild_id, int(payload["user_id"]),
                                    int(payload["role_id"]), str(payload["action"]))

    async def post_embeds(self, channel_id: int, descriptions: Sequence[str],
                          nonce: str) -> Receipt:
        """One message whose embeds have these descriptions (and nothing else), in order."""
        channel = self.client.get_partial_messageable(channel_id)
        embeds = [discord.Embed(description=d, colour=MIRROR_COLOUR) for d in descriptions]
        try:
            # nonce + enforce_nonce (discord.py sets it with nonce): a resend of the same batch
            # returns the first message instead of posting twice. Mentions in embeds never
            # ping; allowed_mentions none says so anyway. Needs Embed Links in the channel.
            message = await channel.send(embeds=embeds, nonce=nonce,
                                         allowed_mentions=discord.AllowedMentions.none())
        except Exception as exc:
            # A channel that refuses one message (deleted, closed to the bot) refuses the
            # lane's next ones too.
            raise _delivery_error(exc, whole_lane=True) from exc
        return Receipt(200, message.id)

    async def sync_role(self, guild_id: int, user_id: int, role_id: int,
                        action: str) -> Receipt:
        http = self.client.http
        try:
            if action == "add":
                await http.add_role(guild_id, user_id, role_id, reason="Lifeline: verified")
            else:
                await http.remove_role(guild_id, user_id, role_id,
                                       reason="Lifeline: no longer verified")
        except discord.NotFound as exc:
            if exc.code == UNKNOWN_MEMBER:
                return Receipt(404)  # the member left: nothing left to change
            raise self._role_error(exc, guild_id, role_id) from exc
        except Exception as exc:
            raise self._role_error(exc, guild_id, role_id) from exc
        return Receipt(204)

    def _role_error(self, exc: BaseException, guild_id: int, role_id: int) -> DeliveryError:
        error = _delivery_error(exc)
        if not error.retryable:
            error.cause = self.role_cause(guild_id, role_id, error.code)
        return error

    def role_cause(self, guild_id: int, role_id: int, code: int | None) -> DeliveryCause:
        """Why Discord refused a role change, from its error code and what discord.py's
        cache shows of the bot's permissions and role position."""
        guild = self.client.get_guild(guild_id)
        role = guild.get_role(role_id) if guild else None
        if code == UNKNOWN_ROLE or (guild is not None and role is None):
            return DeliveryCause.ROLE_DELETED
        me = guild.me if guild else None
        if code == MISSING_PERMISSIONS and me is not None and role is not None:
            if not me.guild_permissions.manage_roles:
                return DeliveryCause.MISSING_MANAGE_ROLES
            if role >= me.top_role:
                return DeliveryCause.ROLE_BELOW
        return DeliveryCause.REFUSED

    def channel_cause(self, guild_id: int, channel_id: int,
                      code: int | None) -> DeliveryCause:
        """Why Discord refused a log-channel message: its error code, and the bot's
        permissions in the channel as discord.py's cache computes them."""
        if code == UNKNOWN_CHANNEL:
            return DeliveryCause.CHANNEL_DELETED
        if code == MISSING_ACCESS:
            return DeliveryCause.CHANNEL_HIDDEN
        guild = self.client.get_guild(guild_id)
        channel = guild.get_channel(channel_id) if guild else None
        if guild is not None and channel is None:
            return DeliveryCause.CHANNEL_DELETED
        if code == MISSING_PERMISSIONS and guild is not None and channel is not None:
            allowed = channel.permissions_for(guild.me)
            if not allowed.view_channel:
                return DeliveryCause.CHANNEL_HIDDEN
            if not allowed.send_messages:
                return DeliveryCause.MISSING_SEND_MESSAGES
            if not allowed.embed_links:
                return DeliveryCause.MISSING_EMBED_LINKS
        return DeliveryCause.REFUSED


def _delivery_error(exc: BaseException, *, whole_lane: bool = False) -> DeliveryError:
    if isinstance(exc, discord.RateLimited):
        return DeliveryError(f"rate limited for {exc.retry_after:.1f}s", status=429,
                             retry_after=exc.retry_after)
    if isinstance(exc, discord.HTTPException):
        text = f"{exc.status} {exc.response.reason if exc.response else ''}".strip()
        detail = f"{text} (code {exc.code}): {exc.text}" if exc.code else text
        # 403 missing access/permissions, 404 unknown channel/role: retrying cannot help.
        retryable = exc.status >= 500 or exc.status in (408, 429)
        return DeliveryError(detail, status=exc.status, retryable=retryable,
                             whole_lane=whole_lane and not retryable, code=exc.code or None)
    if isinstance(exc, aiohttp.ClientError | OSError | TimeoutError):
        return DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True)
    return DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True)
