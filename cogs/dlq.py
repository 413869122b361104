"""`/dlq`: staff remediation of dead letters from Discord, over RemediationService."""

from __future__ import annotations

import logging
import time
from typing import Any

import discord
from discord import app_commands

from cogs.common import (
    acknowledge,
    answer,
    guild_id_of,
    is_staff,
    on_command_error,
    require_staff,
)
from cogs.dlq_deliveries import DeliveryCommands
from cogs.dlq_views import (
    PAGE_SIZE,
    ConfirmView,
    PageView,
    age,
    entry_embed,
    entry_line,
    history_embed,
    page_embed,
    retry_all_text,
    stale_text,
    stats_embed,
)
from cogs.groups import DLQ
from domain.commands import MAX_SNOWFLAKE
from domain.dead_letter_reads import ALL, ORDERS, UNRESOLVED, UNRESOLVED_STATUSES
from domain.entries import Page, RetryOutcome
from domain.errors import DomainError, InvalidInput, StaleEntry
from domain.lifecycle import Operation, Source
from domain.remediation import RETRY_ALL_LIMIT, validate_note
from domain.services import Services
from domain.vocabulary import DeadLetterStatus, state_name, target_name

log = logging.getLogger(__name__)
Interaction = discord.Interaction[Any]

STATUS_CHOICES = [app_commands.Choice(name=s.value, value=s.value) for s in DeadLetterStatus]
LIST_STATUS_CHOICES = [app_commands.Choice(name="unresolved (open and retrying)",
                                           value=UNRESOLVED), *STATUS_CHOICES,
                       app_commands.Choice(name="all", value=ALL)]
RETRY_STATUS_CHOICES = [app_commands.Choice(name=v, value=v)
                        for v in (UNRESOLVED, *UNRESOLVED_STATUSES)]
ORDER_CHOICES = [app_commands.Choice(name=f"{o} first", value=o) for o in ORDERS]
SOURCE_CHOICES = [app_commands.Choice(name=s.value, value=s.value) for s in Source]
OPERATION_CHOICES = [app_commands.Choice(name=o.value, value=o.value) for o in Operation]
NoteText = app_commands.Range[str, 1, 1000]
# Filtered by user (or id), a page's total is counted up to this; past it the footer says
# "1000+". Filtered by status, operation and signature, the total is exact (from counters).
COUNT_LIMIT = 1000
HISTORY_ROWS = 25  # audit rows /dlq history reads (as many as fit are shown)


def parse_entry_id(raw: str) -> int:
    value = raw.strip().removeprefix("#")
    # ASCII digits only: str.isdigit() also takes '²' (int() then fails) and '٣' (which
    # int() reads as 3).
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) <= MAX_SNOWFLAKE:
        raise InvalidInput(f"{raw[:40]!r} is not a dead-letter id: pick one from the list "
                           "or type its number, like 42")
    return int(value)


async def _confirmed(interaction: Interaction, question: str, declined: str, *,
                     confirm_label: str | None = None) -> tuple[Interaction, ConfirmView] | None:
    """Ask with a confirm / Cancel pair; the click that confirmed (answer it) and the view
    (its buttons now disabled), or None once the question says `declined` (Cancel, or no
    answer within two minutes)."""
    view = ConfirmView(interaction.user.id, confirm_label=confirm_label)
    await answer(interaction, question, view=view)
    timed_out = await view.wait()
    if view.clicked is not None and not view.confirmed:
        # Cancel: the click is answered by editing the question.
        await view.clicked.response.edit_message(content=f"{declined}.", view=None)
        return None
    if timed_out or view.clicked is None:
        await interaction.edit_original_response(
            content=f"{declined} (no answer within two minutes).", view=None)
        return None
    return view.clicked, view


def _retried(entry_id: int, outcome: RetryOutcome) -> str:
    if outcome.resolved:
        return f"✅ #{entry_id} resolved: {outcome.detail}"
    return (f"❌ #{entry_id} is still open: {outcome.detail} "
            f"(attempt {outcome.entry.remediation_count})")


class DeadLetterCog(DeliveryCommands):
    dlq = DLQ  # failed deliveries' commands come from DeliveryCommands

    def __init__(self, services: Services) -> None:
        self.remediation = services.remediation
        self.guilds = services.guilds
        self.deliveries = services.deliveries
        self.audit = services.audit

    async def interaction_check(self, interaction: Interaction) -> bool:
        return await acknowledge(interaction)

    async def cog_app_command_error(self, interaction: Interaction,
                                    error: app_commands.AppCommandError) -> None:
        await on_command_error(interaction, error)

    # ---- autocomplete (scoped to the guild, staff only) ---------------------------------

    async def _staff_for_autocomplete(self, interaction: Interaction) -> int | None:
        if interaction.guild_id is None:
            return None
        config = await self.guilds.get(interaction.guild_id)
        return interaction.guild_id if config and is_staff(interaction, config) else None

    async def id_autocomplete(self, interaction: Interaction,
                              current: str) -> list[app_commands.Choice[str]]:
        guild_id = await self._staff_for_autocomplete(interaction)
        if guild_id is None:
            return []
        typed = current.strip().removeprefix("#")
        if typed and not (typed.isascii() and typed.isdigit() and len(typed) <= 19):
            return []
        # The prefix is matched in the database: an older entry is found by its number too.
        page = await self.remediation.page(guild_id, status=DeadLetterStatus.OPEN.value,
                                           id_prefix=typed or None, limit=25,
                                           with_total=False)
        return [app_commands.Choice(
                    name=f"#{e.id} {e.operation} {state_name(e.from_state)}→"
                         f"{target_name(e.to_state)} {e.reason_code} · "
                         f"{age(e.created_at)}"[:100], value=str(e.id))
                for e in page.items]

    async def signature_autocomplete(self, interaction: Interaction,
                                     current: str) -> list[app_commands.Choice[str]]:
        guild_id = await self._staff_for_autocomplete(interaction)
        if guild_id is None:
            return []
        sigs = await self.remediation.signatures(guild_id, current[:100], limit=25)
        return [app_commands.Choice(name=f"{s.signature} ({s.open} open)"[:100],
                                    value=s.signature[:100]) for s in sigs]

    # ---- reading ----------------------------------------------------------------------

    @dlq.command(name="list", description="Dead letters of this server (unresolved unless a "
                                          "status is chosen), newest first")
    @app_commands.choices(status=LIST_STATUS_CHOICES, operation=OPERATION_CHOICES,
                          order=ORDER_CHOICES)
    async def list_(self, interaction: Interaction,
                    status: app_commands.Choice[str] | None = None,
                    operation: app_commands.Choice[str] | None = None,
                    signature: app_commands.Range[str, 1, 300] | None = None,
                    order: app_commands.Choice[str] | None = None) -> None:
        await require_staff(interaction, self.guilds)
        guild_id = guild_id_of(interaction)
        chosen = status.value if status else UNRESOLVED
        ordered = order.value if order else "newest"
        filters = ", ".join(f for f in (f"status {chosen}",
                                        operation and f"operation {operation.value}",
                                        signature and f"signature {signature}",
                                        ordered == "oldest" and "oldest first") if f)
        pages: list[str | None] = [None]

        async def load(_: Interaction, cursor: str | None) -> tuple[Page, discord.Embed]:
            page = await self.remediation.page(
                guild_id, status=chosen, operation=operation.value if operation else None,
                signature=signature, limit=PAGE_SIZE, cursor=cursor,
                count_limit=COUNT_LIMIT, order=ordered)
            return page, page_embed(page, filters, len(pages), COUNT_LIMIT)

        page, embed = await load(interaction, None)
        await answer(interaction, embed=embed,
                     view=PageView(interaction.user.id, load, pages, page))

    @dlq.command(name="show", description="Every field of one entry and its history")
    @app_commands.rename(entry="id")
    @app_commands.autocomplete(entry=id_autocomplete)
    async def show(self, interaction: Interaction, entry: str) -> None:
        await require_staff(interaction, self.guilds)
        found, history = await self.remediation.show(guild_id_of(interaction),
                                                     parse_entry_id(entry))
        await answer(interaction, embed=entry_embed(found, history))

    @dlq.command(name="history", description="Who did what to an entry, newest first (kept "
                                             "after it is deleted)")
    @app_commands.rename(entry="id")
    @app_commands.autocomplete(entry=id_autocomplete)
    async def history(self, interaction: Interaction, entry: str) -> None:
        await require_staff(interaction, self.guilds)
        entry_id = parse_entry_id(entry)
        page = await self.audit.page(guild_id_of(interaction), dead_letter_id=entry_id,
                                     limit=HISTORY_ROWS)
        await answer(interaction, embed=history_embed(entry_id, page.items,
                                                      page.next_cursor is not None))

    @dlq.command(name="stats", description="Counts by status, top signatures, oldest entry")
    async def stats(self, interaction: Interaction) -> None:
        await require_staff(interaction, self.guilds)
        await answer(interaction,
                     embed=stats_embed(await self.remediation.stats(guild_id_of(interaction))))

    # ---- acting -----------------------------------------------------------------------

    @dlq.command(name="retry", description="Replay one entry now")
    @app_commands.rename(entry="id")
    @app_commands.autocomplete(entry=id_autocomplete)
    async def retry(self, interaction: Interaction, entry: str) -> None:
        await require_staff(interaction, self.guilds)
        entry_id = parse_entry_id(entry)
        guild_id = guild_id_of(interaction)
        try:
            outcome = await self.remediation.retry(guild_id, entry_id, interaction.user.id,
                                                   Source.STAFF)
        except StaleEntry as stale:
            # Not applied blindly: what changed, what a replay would do now, and a choice.
            confirmed = await _confirmed(interaction, stale_text(stale), "Not replayed",
                                         confirm_label="Replay anyway")
            if confirmed is None:
                return
            click, _ = confirmed
            await click.response.edit_message(content=f"Replaying #{entry_id}…", view=None)
            outcome = await self.remediation.retry(guild_id, entry_id, interaction.user.id,
                                                   Source.STAFF, force=True)
            await click.edit_original_response(content=_retried(entry_id, outcome))
            return
        await answer(interaction, _retried(entry_id, outcome))

    @dlq.command(name="retry-group", description="Replay every open entry of a signature")
    @app_commands.autocomplete(signature=signature_autocomplete)
    async def retry_group(self, interaction: Interaction,
                          signature: app_commands.Range[str, 1, 300]) -> None:
        await require_staff(interaction, self.guilds)
        guild_id = guild_id_of(interaction)
        open_count = (await self.remediation.page(guild_id, status="open",
                                                  signature=signature, limit=1)).total
        if open_count == 0:
            await answer(interaction, f"No open entries with signature `{signature}`.")
            return
        confirmed = await _confirmed(interaction, f"Retry **{open_count}** open entries with "
                                                  f"signature `{signature}`?", "Nothing retried")
        if confirmed is None:
            return
        click, view = confirmed
        await click.response.edit_message(content=f"Retrying 0/{open_count}…", view=view)
        last_edit = 0.0

        async def progress(done: int, total: int, resolved: int) -> None:
            nonlocal last_edit
            now = time.monotonic()
            if done < total and now - last_edit < 1.0:
                return  # at most one edit a second: Discord rate-limits edits too
            last_edit = now
            await click.edit_original_response(
                content=f"Retrying {done}/{total}… {resolved} resolved")

        result = await self.remediation.retry_group(guild_id, signature, interaction.user.id,
                                                    Source.STAFF, progress)
        await click.edit_original_response(
            content=(f"Done: {result.total} retried, ✅ {result.resolved} resolved, "
                     f"❌ {result.failed} failed"
                     + (f", {result.skipped} taken by someone else" if result.skipped else "")
                     + (f", {result.stale} stale (their member changed since: `/dlq retry` "
                        "one to see what changed)" if result.stale else "")),
            view=None)

    @dlq.command(name="resolve", description="Close an entry: it was fixed another way")
    @app_commands.rename(entry="id")
    @app_commands.autocomplete(entry=id_autocomplete)
    async def resolve(self, interaction: Interaction, entry: str, note: NoteText) -> None:
        await require_staff(interaction, self.guilds)
        done = await self.remediation.resolve(guild_id_of(interaction), parse_entry_id(entry),
                                              interaction.user.id, note, Source.STAFF)
        await answer(interaction, f"✅ resolved {entry_line(done)}")

    @dlq.command(name="dismiss", description="Close an entry: nothing to do")
    @app_commands.rename(entry="id")
    @app_commands.autocomplete(entry=id_autocomplete)
    async def dismiss(self, interaction: Interaction, entry: str, note: NoteText) -> None:
        await require_staff(interaction, self.guilds)
        done = await self.remediation.dismiss(guild_id_of(interaction), parse_entry_id(entry),
                                              interaction.user.id, note, Source.STAFF)
        await answer(interaction, f"✅ dismissed {entry_line(done)}")

    @dlq.command(name="reopen", description="Reopen a dismissed or resolved entry")
    @app_commands.rename(entry="id")
    @app_commands.describe(note="why (optional, kept in the audit trail)")
    async def reopen(self, interaction: Interaction, entry: str,
                     note: NoteText | None = None) -> None:
        await require_staff(interaction, self.guilds)
        done = await self.remediation.reopen(guild_id_of(interaction), parse_entry_id(entry),
                                             interaction.user.id, Source.STAFF, note)
        await answer(interaction, f"✅ reopened {entry_line(done)}")

    @dlq.command(name="delete", description="Delete an entry, with a note (its history is "
                                            "kept)")
    @app_commands.rename(entry="id")
    @app_commands.autocomplete(entry=id_autocomplete)
    async def delete(self, interaction: Interaction, entry: str, note: NoteText) -> None:
        await require_staff(interaction, self.guilds)
        entry_id = parse_entry_id(entry)
        guild_id = guild_id_of(interaction)
        validate_note(note)  # a blank note is refused before anything is asked
        found = await self.remediation.get(guild_id, entry_id)
        confirmed = await _confirmed(
            interaction, f"Delete {entry_line(found)}?\nThis cannot be undone; its history "
            "is kept (`/dlq history`).", "Not deleted", confirm_label="Delete")
        if confirmed is None:
            return
        click, _ = confirmed
        try:
            done = await self.remediation.delete(guild_id, entry_id, interaction.user.id,
                                                 note, Source.STAFF)
        except DomainError as exc:  # e.g. a retry started meanwhile: the click hears why
            await click.response.edit_message(content=f"❌ {exc}", view=None)
            return
        await click.response.edit_message(
            content=f"🗑️ deleted #{done.id} (it was {done.status}); its history is kept",
            view=None)

    @dlq.command(name="retry-all", description="Replay every unresolved entry matching the "
                                               "filters (oldest first)")
    @app_commands.choices(status=RETRY_STATUS_CHOICES, operation=OPERATION_CHOICES,
                          source=SOURCE_CHOICES)
    @app_commands.autocomplete(signature=signature_autocomplete)
    async def retry_all(self, interaction: Interaction,
                        status: app_commands.Choice[str] | None = None,
                        operation: app_commands.Choice[str] | None = None,
                        signature: app_commands.Range[str, 1, 300] | None = None,
                        source: app_commands.Choice[str] | None = None,
                        user: discord.User | None = None) -> None:
        await require_staff(interaction, self.guilds)
        guild_id = guild_id_of(interaction)
        chosen: dict[str, Any] = {
            "status": status.value if status else None,
            "operation": operation.value if operation else None, "signature": signature,
            "entry_source": source.value if source else None,
            "user_id": user.id if user else None}
        described = ", ".join(f"{k.removeprefix('entry_')} `{v}`"
                              for k, v in chosen.items() if v is not None)
        preview = await self.remediation.retry_all(guild_id, interaction.user.id,
                                                   Source.STAFF, dry_run=True, **chosen)
        if preview.matched == 0:
            await answer(interaction, "No unresolved entries match"
                                      + (f" ({described})." if described else "."))
            return
        question = (f"Retry **{preview.matched}** unresolved entries"
                    + (f" ({described})" if described else "") + "?")
        if preview.matched > RETRY_ALL_LIMIT:
            question += f" The oldest {RETRY_ALL_LIMIT} now; run it again for the rest."
        confirmed = await _confirmed(interaction, question, "Nothing retried")
        if confirmed is None:
            return
        click, view = confirmed
        await click.response.edit_message(content="Retrying…", view=view)
        result = await self.remediation.retry_all(guild_id, interaction.user.id,
                                                  Source.STAFF, _progress(click), **chosen)
        await click.edit_original_response(content=retry_all_text(result), view=None)


def _progress(click: Interaction) -> Any:
    """Edits the answer with the progress, at most once a second (Discord rate-limits
    edits too)."""
    last_edit = 0.0

    async def progress(done: int, total: int, resolved: int) -> None:
        nonlocal last_edit
        now = time.monotonic()
        if done < total and now - last_edit < 1.0:
            return
        last_edit = now
        await click.edit_original_response(content=f"Retrying {done}/{total}… "
                                                   f"{resolved} resolved")

    return progress
