"""Embeds and buttons of `/dlq`: rendering only, no service calls of their own."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import discord

from domain.entries import BulkRetryResult, DeadLetterEntry, Page, RemediationRecord, Stats
from domain.errors import StaleEntry
from domain.lifecycle import Operation, State, TransitionNotAllowed, target_state
from domain.vocabulary import state_name, target_name

Interaction = discord.Interaction[Any]
PAGE_SIZE = 10
# Discord's embed limits: a field's value, a description, an embed's text in all.
FIELD_MAX = 1024
DESCRIPTION_MAX = 4096
EMBED_MAX = 6000


def duration(seconds: float) -> str:
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size:
            return f"{whole // size}{unit}"
    return f"{max(whole, 0)}s"


def age(moment: datetime) -> str:
    return duration((datetime.now(UTC) - moment).total_seconds())


def _arrow(entry: DeadLetterEntry) -> str:
    return f"{state_name(entry.from_state)} → {target_name(entry.to_state)}"


def entry_line(entry: DeadLetterEntry) -> str:
    return (f"**#{entry.id}** <@{entry.user_id}> `{entry.operation}` {_arrow(entry)} · "
            f"{entry.reason_code} · {entry.attempts} attempt(s) · {age(entry.created_at)} · "
            f"{entry.status}")


def page_embed(page: Page, filters: str, page_number: int,
               count_limit: int | None = None) -> discord.Embed:
    embed = discord.Embed(title="Dead letters", colour=discord.Colour.red())
    embed.description = "\n".join(entry_line(e) for e in page.items)[:4000] or \
        "No dead letters match."
    shown = str(page.total) if page.total_exact or count_limit is None else f"{count_limit}+"
    embed.set_footer(text=f"{shown} in total · page {page_number}"
                          + (f" · {filters}" if filters else ""))
    return embed


def entry_embed(entry: DeadLetterEntry, history: list[RemediationRecord]) -> discord.Embed:
    embed = discord.Embed(title=f"Dead letter #{entry.id} · {entry.status}",
                          colour=discord.Colour.orange())
    embed.description = (f"<@{entry.user_id}> `{entry.operation}` {_arrow(entry)}\n"
                          f"**{entry.reason_code}** · {entry.error_type}: "
                          f"{discord.utils.escape_markdown(entry.error_message)[:1500]}")
    fields = {
        "observed": f"{entry.observed_state or 'no record'} v{entry.observed_version or 0}",
        "attempts": str(entry.attempts),
        "source": entry.source + (f" by <@{entry.actor_id}>" if entry.actor_id else ""),
        "signature": f"`{entry.signature}`",
        "idempotency key": f"`{entry.idempotency_key[:100]}`",
        "correlation id": f"`{entry.correlation_id}`",
        "remediations": str(entry.remediation_count)
        + (f", last {age(entry.last_remediated_at)} ago" if entry.last_remediated_at else ""),
        "created": f"<t:{int(entry.created_at.timestamp())}:R>",
        "updated": f"<t:{int(entry.updated_at.timestamp())}:R>",
        "version": str(entry.version),
    }
    if entry.resolved_by:
        fields["closed by"] = f"<@{entry.resolved_by}>"
    if entry.resolution_note:
        fields["note"] = discord.utils.escape_markdown(entry.resolution_note)[:1000]
    for name, value in fields.items():
        embed.add_field(name=name, value=value, inline=True)
    payload = json.dumps(entry.payload, separators=(",", ":"), default=str)
    embed.add_field(name="payload", inline=False,
                    value=f"```json\n{payload[:900]}{'…' if len(payload) > 900 else ''}\n```")
    if history:
        lines = [f"<t:{int(h.created_at.timestamp())}:f> {h.action} by <@{h.actor_id}> "
                 f"({h.source}): {h.outcome}"
                 + (f" — {discord.utils.escape_markdown(h.note)[:80]}" if h.note else "")
                 for h in history[-10:]]
        embed.add_field(name="history", value="\n".join(lines)[:1024], inline=False)
    if entry.stack_trace:
        _add_stack_trace(embed, entry.stack_trace)
    return embed


def _add_stack_trace(embed: discord.Embed, trace: str) -> None:
    """The stack trace's end (the innermost frames and the error) in a code block, in the
    room the embed has left (a field holds 1,024 characters, an embed 6,000); the whole
    trace is in the API's and the CLI's `show`."""
    trace = trace.rstrip().replace("`", "'")
    name = "stack trace"
    room = min(FIELD_MAX, EMBED_MAX - len(embed) - len(name) - 40) - len("```\n\n```")
    if room < 100:
        return
    shown = trace if len(trace) <= room else "…" + trace[-(room - 1):]
    if len(shown) < len(trace):
        name += f" (last {len(shown) - 1} of {len(trace)} characters)"
    embed.add_field(name=name, value=f"```\n{shown}\n```", inline=False)


def retry_all_text(result: BulkRetryResult) -> str:
    """The summary of a /dlq retry-all."""
    return (f"Done: {result.matched} matched, ✅ {result.resolved} resolved, "
            f"❌ {result.failed} failed"
            + (f", {result.skipped} skipped (being retried, or taken by someone else)"
               if result.skipped else "")
            + (f", {result.stale} stale (their member changed since: `/dlq retry` one to "
               "see what changed)" if result.stale else "")
            + (f". {result.remaining} more match: run it again." if result.remaining
               else ""))


def history_embed(entry_id: int, rows: list[RemediationRecord], more: bool) -> discord.Embed:
    """An entry's audit rows, newest first, as many as one embed's description holds."""
    embed = discord.Embed(title=f"History of dead letter #{entry_id}",
                          colour=discord.Colour.dark_grey())
    lines: list[str] = []
    size = 0
    for h in rows:
        line = (f"<t:{int(h.created_at.timestamp())}:f> **{h.action}** by <@{h.actor_id}> "
                f"({h.source}): {h.outcome} · {h.status_before} → {h.status_after}"
                + (f" — {discord.utils.escape_markdown(h.note)[:200]}" if h.note else "")
                + (f" · {discord.utils.escape_markdown(h.error_message)[:200]}"
                   if h.error_message else ""))
        if size + len(line) + 1 > DESCRIPTION_MAX:
            more = True
            break
        lines.append(line)
        size += len(line) + 1
    embed.description = "\n".join(lines) or "No audit rows for this entry."
    embed.set_footer(text=f"{len(lines)} shown, newest first"
                          + (" · older rows: the API's /audit?dead_letter_id=" + str(entry_id)
                             if more else ""))
    return embed


def stats_embed(stats: Stats) -> discord.Embed:
    embed = discord.Embed(title="Dead-letter stats", colour=discord.Colour.blurple())
    embed.description = f"total **{stats.total}** · " + " · ".join(
        f"{k} **{v}**" for k, v in stats.by_status.items())
    oldest = stats.oldest_open_age_seconds
    embed.add_field(name="oldest open",
                    value=duration(oldest) if oldest is not None else "none")
    embed.add_field(name="retention", value=(
        f"{stats.retention_days} days (resolved and dismissed entries and delivered log "
        "messages are purged after that; their history is kept)"
        if stats.retention_days else "keep everything (RETENTION_DAYS=0)"))
    if stats.by_signature:
        embed.add_field(name="top signatures", inline=False, value="\n".join(
            f"`{s.signature}` open {s.open} / {s.total}" for s in stats.by_signature)[:1024])
    return embed


Loader = Callable[[Interaction, str | None], Awaitable[tuple[Page, discord.Embed]]]


class PageView(discord.ui.View):
    """Previous / Next over keyset pages; only the staff member who asked can page."""

    def __init__(self, owner_id: int, loader: Loader, cursors: list[str | None],
                 page: Page) -> None:
        super().__init__(timeout=600)
        self.owner_id = owner_id
        self.loader = loader
        self.cursors = cursors  # cursors[i] = the cursor that loads page i
        self.page = page
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.previous.disabled = len(self.cursors) <= 1
        self.next.disabled = self.page.next_cursor is None

    async def interaction_check(self, interaction: Interaction) -> bool:
        if interaction.user.id != self.owner_id:
            await interaction.response.send_message("❌ these buttons belong to whoever ran "
                                                    "/dlq list", ephemeral=True)
            return False
        return True

    async def _show(self, interaction: Interaction) -> None:
        self.page, embed = await self.loader(interaction, self.cursors[-1])
        self._update_buttons()
        await interaction.response.edit_message(embed=embed, view=self)

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary,
                       custom_id="dlq:prev")
    async def previous(self, interaction: Interaction, button: discord.ui.Button[Any]) -> None:
        if len(self.cursors) > 1:
            self.cursors.pop()
        await self._show(interaction)

    @discord.ui.button(label="Next", style=discord.ButtonStyle.primary, custom_id="dlq:next")
    async def next(self, interaction: Interaction, button: discord.ui.Button[Any]) -> None:
        if self.page.next_cursor is not None:
            self.cursors.append(self.page.next_cursor)
        await self._show(interaction)


SHOWN_SINCE = 10  # transitions a stale warning lists


def stale_text(stale: StaleEntry) -> str:
    """What changed since a stale entry was recorded, and what a replay would do now."""
    lines = [f"⚠️ #{stale.entry_id} is stale: when it was recorded the member was "
             f"**{state_name(stale.recorded_state)}** (version {stale.recorded_version}); now "
             f"**{state_name(stale.current_state)}** (version {stale.current_version}), after "
             f"{stale.transitions_since} transition(s)"
             + (f"; the newest {SHOWN_SINCE}:" if stale.transitions_since > SHOWN_SINCE
                else ":")]
    for h in stale.recent_transitions[:SHOWN_SINCE]:
        by = f" by <@{h.actor_id}>" if h.actor_id else ""
        lines.append(f"• v{h.version} `{h.operation.value}` {state_name(h.from_state)} → "
                     f"{h.to_state.value} ({h.source.value}{by}) <t:"
                     f"{int(h.created_at.timestamp())}:R>")
    try:
        now = target_state(Operation(stale.operation), State(stale.current_state)
                           if stale.current_state else None)
        effect = (f"Replaying `{stale.operation}` now would move the member "
                  f"{state_name(stale.current_state)} → {now.value}.")
    except (TransitionNotAllowed, ValueError):
        effect = (f"Replaying `{stale.operation}` now would be refused: it is not allowed "
                  f"from {state_name(stale.current_state)}.")
    return "\n".join([*lines, effect])


class ConfirmView(discord.ui.View):
    """Asks once; the first click by the asking staff member decides."""

    def __init__(self, owner_id: int, confirm_label: str | None = None) -> None:
        super().__init__(timeout=120)
        if confirm_label is not None:
            self.confirm.label = confirm_label
        self.owner_id = owner_id
        self.confirmed: bool | None = None
        self.clicked: Interaction | None = None

    async def interaction_check(self, interaction: Interaction) -> bool:
        if interaction.user.id != self.owner_id:
            await interaction.response.send_message("❌ only the staff member who asked can "
                                                    "confirm", ephemeral=True)
            return False
        return True

    async def _decide(self, interaction: Interaction, value: bool) -> None:
        if self.confirmed is not None:
            await interaction.response.defer()
            return
        self.confirmed = value
        self.clicked = interaction
        for item in self.children:
            if isinstance(item, discord.ui.Button):
                item.disabled = True
        self.stop()

    @discord.ui.button(label="Retry them all", style=discord.ButtonStyle.danger,
                       custom_id="dlq:confirm")
    async def confirm(self, interaction: Interaction, button: discord.ui.Button[Any]) -> None:
        await self._decide(interaction, True)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary,
                       custom_id="dlq:cancel")
    async def cancel(self, interaction: Interaction, button: discord.ui.Button[Any]) -> None:
        await self._decide(interaction, False)
