"""`/dlq deliveries`, `/dlq delivery`, `/dlq delivery-retry`, `/dlq deliveries-retry`: failed
side effects (role changes, log-channel lines) from Discord, over DeliveryService.

A mixin of DeadLetterCog (its `deliveries` and `guilds`), on the same `/dlq` group.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common import answer, delivery_notice, guild_id_of, is_staff, require_staff
from cogs.dlq_views import age
from cogs.groups import DLQ
from domain.deliveries import (
    FAILED_STATUSES,
    REQUEUED,
    DeliveryService,
    delivery_ref,
    describe,
    parse_delivery_id,
    requeued_before,
)
from domain.guilds import GuildSettingsService
from domain.lifecycle import Source
from domain.records import Delivery, DeliveryTimeline, RetryResult
from domain.vocabulary import OutboxKind

Interaction = discord.Interaction[Any]
KIND_CHOICES = [app_commands.Choice(name="role changes", value=OutboxKind.ROLE_SYNC.value),
                app_commands.Choice(name="log-channel lines", value=OutboxKind.MIRROR.value)]
LIST_SIZE = 15
TIMELINE_SIZE = 10
FIELD_MAX = 1024  # an embed field value, as Discord allows


def what(d: Delivery) -> str:
    if d.kind is OutboxKind.ROLE_SYNC:
        verb = "grant" if d.action == "add" else "remove"
        return f"{verb} <@&{d.role_id}> for <@{d.user_id}>"
    return f"{d.record or 'log'} line for <#{d.channel_id}>"


def cause_of(d: Delivery) -> str:
    return describe(d.cause, channel=f"<#{d.channel_id}>" if d.channel_id else
                    "the log channel")


def delivery_line(d: Delivery) -> str:
    return f"**{delivery_ref(d.id)}** {what(d)} · {d.status.value} · {cause_of(d)} · " \
           f"{age(d.updated_at)} ago"


def delivery_embed(d: Delivery, timeline: DeliveryTimeline) -> discord.Embed:
    embed = discord.Embed(title=f"Delivery {delivery_ref(d.id)} · {d.status.value}",
                          colour=discord.Colour.orange())
    embed.description = what(d)
    failed = d.status in FAILED_STATUSES
    if failed:  # a requeued or delivered one has no cause to fix
        embed.description += f"\n**Cause:** {cause_of(d)}"
    if d.last_error:
        embed.description += f"\n**Error:** {discord.utils.escape_markdown(d.last_error)[:800]}"
    attempts = timeline.attempts
    lines: list[str] = []  # newest first, as many as fit, then put in order
    shown = 0
    for i in range(len(attempts) - 1, max(-1, len(attempts) - 1 - TIMELINE_SIZE), -1):
        a = attempts[i]
        block = [
            f"`#{a.attempt}` {discord.utils.format_dt(a.started_at, 'R')} {a.outcome or '?'} · "
            f"{'retryable' if a.retryable else 'final'} · HTTP {a.http_status or '-'}"
            + (f" code {a.discord_code}" if a.discord_code else "") + f" · {a.duration_ms} ms"]
        if requeued_before(attempts, i):
            block.insert(0, f"↻ {REQUEUED}")
        if sum(len(line) + 1 for line in lines + block) > FIELD_MAX:
            break
        lines = block + lines
        shown += 1
    name = f"Attempts (the newest {shown})" if shown < len(attempts) or timeline.earlier \
        else f"Attempts ({len(attempts)})"
    embed.add_field(name=name, value="\n".join(lines) or "none", inline=False)
    if failed:
        embed.set_footer(text=f"/dlq delivery-retry {delivery_ref(d.id)} once the cause is "
                              "fixed")
    return embed


def retry_text(result: RetryResult, ref: str | None = None) -> str:
    if ref is not None and result.stale:
        return (f"⏭️ {ref} no longer applies (the member's state changed since): skipped, "
                "nothing was changed in Discord")
    if ref is not None and result.waiting:
        return f"⏸️ {ref} waits: no log channel is set (`/lifeline setup`)"
    if ref is not None:
        return f"✅ {ref} queued again: it is delivered within seconds if the cause is fixed"
    text = f"✅ {result.requeued} of {result.matched} failed deliveries queued again"
    if result.stale:
        text += f", {result.stale} no longer apply (skipped)"
    if result.waiting:
        text += f", {result.waiting} log lines wait for a log channel (`/lifeline setup`)"
    if result.more:
        text += "; more are left: run it again"
    return text


class DeliveryCommands(commands.Cog):
    """Mixed into DeadLetterCog, which sets `deliveries` and `guilds`; never added alone."""

    deliveries: DeliveryService
    guilds: GuildSettingsService

    async def _require_staff(self, interaction: Interaction) -> None:
        await require_staff(interaction, self.guilds)
        delivery_notice(interaction)  # these answers are about them: no notice on top

    async def delivery_autocomplete(self, interaction: Interaction,
                                    current: str) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None:
            return []
        config = await self.guilds.get(interaction.guild_id)
        if config is None or not is_staff(interaction, config):
            return []
        typed = current.strip().lstrip("Dd")
        page = await self.deliveries.page(interaction.guild_id, limit=25)
        return [app_commands.Choice(name=f"{delivery_ref(d.id)} {what(d)}"[:100],
                                    value=delivery_ref(d.id))
                for d in page.items if str(d.id).startswith(typed)][:25]

    @DLQ.command(name="deliveries",
                 description="Role changes and log lines that could not be delivered")
    @app_commands.choices(kind=KIND_CHOICES)
    async def deliveries_list(self, interaction: Interaction,
                              kind: app_commands.Choice[str] | None = None) -> None:
        await self._require_staff(interaction)
        guild_id = guild_id_of(interaction)
        page = await self.deliveries.page(guild_id, statuses=FAILED_STATUSES,
                                          kind=OutboxKind(kind.value) if kind else None,
                                          limit=LIST_SIZE)
        summary = await self.deliveries.summary(guild_id)
        embed = discord.Embed(title="Failed deliveries", colour=discord.Colour.red())
        embed.description = "\n".join(delivery_line(d) for d in page.items)[:4000] or \
            "Nothing failed: every role change and log line was delivered."
        embed.set_footer(text=f"{summary.failed} failed in total · fix the cause, then "
                              "/dlq delivery-retry one or /dlq deliveries-retry all")
        await answer(interaction, embed=embed)

    @DLQ.command(name="delivery", description="One failed delivery: its cause and attempts")
    @app_commands.autocomplete(delivery=delivery_autocomplete)
    @app_commands.describe(delivery="its D number, like D42")
    async def delivery_show(self, interaction: Interaction, delivery: str) -> None:
        await self._require_staff(interaction)
        found, timeline = await self.deliveries.show(guild_id_of(interaction),
                                                     parse_delivery_id(delivery))
        await answer(interaction, embed=delivery_embed(found, timeline))

    @DLQ.command(name="delivery-retry", description="Retry one failed delivery")
    @app_commands.autocomplete(delivery=delivery_autocomplete)
    @app_commands.describe(delivery="its D number, like D42")
    async def delivery_retry(self, interaction: Interaction, delivery: str) -> None:
        await self._require_staff(interaction)
        delivery_id = parse_delivery_id(delivery)
        result = await self.deliveries.retry(guild_id_of(interaction), delivery_id,
                                             interaction.user.id, Source.STAFF)
        await answer(interaction, retry_text(result, delivery_ref(delivery_id)))

    @DLQ.command(name="deliveries-retry",
                 description="Retry every failed delivery of this server, oldest first")
    @app_commands.choices(kind=KIND_CHOICES)
    async def deliveries_retry(self, interaction: Interaction,
                               kind: app_commands.Choice[str] | None = None) -> None:
        await self._require_staff(interaction)
        result = await self.deliveries.retry_failed(
            guild_id_of(interaction), interaction.user.id, Source.STAFF,
            kind=OutboxKind(kind.value) if kind else None)
        await answer(interaction, retry_text(result))
