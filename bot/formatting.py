"""What the log channel shows, rendered at the Discord edge when an outbox row is delivered.

The outbox keeps a mirror record's facts (domain/mirror.py: ids, operation, states, outcome,
note); they become a line here, with text people typed escaped by discord.py's own helpers.
Rows queued before the outbox kept facts carry their rendered `line`, delivered as it is.
Lines use mentions for readability; the deliverer sends them with allowed_mentions none, so
nobody is pinged whatever the text says.

A mirror message carries its lines in embeds, not in its content: an embed description
holds 4,096 characters and a message 10 embeds of 6,000 characters in all, three times the
2,000 characters of a message's content, so a burst of records needs a third of the
messages under the channel's rate limit. Consecutive rows of a channel's lane go out as one
message whose nonce is the database's identity and the batch's head row id: a resend after a
crash is the same batch with the same nonce, which Discord de-duplicates, and a new database
(whose ids start again) never repeats a nonce of the old one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import discord

from domain.outbox import Claimed
from domain.redaction import without_bidi_controls
from domain.vocabulary import OutboxKind, state_name, target_name

# Discord's embed limits (https://discord.com/developers/docs/resources/message#embed-object-
# embed-limits). Discord counts code points (its API is Python: len()), as the sandbox does;
# `discord_length` counts UTF-16 code units, never fewer, so a batch that fits here fits there.
EMBED_DESCRIPTION_MAX = 4096
EMBEDS_PER_MESSAGE = 10
EMBEDS_TOTAL_MAX = 6000
# One line never takes more than an embed description; longer ones end with "…".
MAX_LINE = EMBED_DESCRIPTION_MAX
# Rows claimed with a lane's head, before packing: short lines (~60 characters) fit 100 a
# message.
MAX_BATCH_ROWS = 100
# A staff note is cut to this many characters in the log channel (the record keeps it all).
NOTE_MAX = 300
ARROW = "→"
NO_TEXT = "(no text)"  # Discord refuses an embed without text


class UnreadableRecord(ValueError):
    """A mirror row whose facts cannot be rendered (an unknown record, a missing fact)."""


def escape(text: str) -> str:
    """Text people typed, shown as typed: markdown escaped, @everyone, @here and user and
    role mentions broken (discord.py's helpers)."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(
        without_bidi_controls(text)))


# ---- lines ------------------------------------------------------------------------------

def transition_line(facts: Mapping[str, Any]) -> str:
    actor = facts.get("actor_id")
    by = f" by <@{actor}>" if actor else ""
    return (f"➡️ <@{facts['user_id']}> `{facts['operation']}` "
            f"({state_name(facts['from_state'])} {ARROW} {target_name(facts['to_state'])}), "
            f"source {facts['source']}{by}")


def dead_letter_line(facts: Mapping[str, Any]) -> str:
    return (
        f"🟥 Dead letter #{facts['dead_letter_id']}: `{facts['operation']}` for "
        f"<@{facts['user_id']}> ({state_name(facts['from_state'])} {ARROW} "
        f"{target_name(facts['to_state'])}) {facts['reason_code']} after {facts['attempts']} "
        f"attempt(s), source {facts['source']}"
    )


# A remediation's action, as the log line says it.
DONE = {"retry": "retried", "resolve": "resolved", "dismiss": "dismissed", "reopen": "reopened",
        "delete": "deleted"}


def remediation_line(facts: Mapping[str, Any]) -> str:
    action = str(facts["action"])
    outcome = str(facts["outcome"])
    if facts.get("error"):
        outcome += f": {facts['error']}"
    line = (
        f"🛠️ <@{facts['actor_id']}> {DONE.get(action, action)} #{facts['dead_letter_id']} "
        f"(`{facts['operation']}` for <@{facts['user_id']}>, "
        f"{state_name(facts['from_state'])} {ARROW} {target_name(facts['to_state'])}): "
        f"{outcome}"
    )
    note = facts.get("note")
    if note:
        line += f" — “{escape(note[:NOTE_MAX])}”"
    return line


def delivery_retry_line(facts: Mapping[str, Any]) -> str:
    ids = [f"D{int(i)}" for i in facts["delivery_ids"]]
    more = int(facts["matched"]) - len(ids)
    named = ", ".join(ids) + (f" and {more} more" if more > 0 else "")
    parts = [f"{facts['requeued']} requeued"]
    if facts.get("stale"):
        parts.append(f"{facts['stale']} stale (no longer applies, skipped)")
    if facts.get("waiting"):
        parts.append(f"{facts['waiting']} waiting for a log channel")
    return (f"🛠️ <@{facts['actor_id']}> retried failed deliveries {named or '(none)'}: "
            + ", ".join(parts))


RENDER: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "transition": transition_line,
    "dead_letter": dead_letter_line,
    "remediation": remediation_line,
    "delivery_retry": delivery_retry_line,
}


def mirror_line(payload: Mapping[str, Any]) -> str:
    """The line of a mirror row: its facts rendered, or the line it was queued with."""
    if not isinstance(payload, Mapping):
        raise UnreadableRecord(f"a mirror payload that is not an object: {payload!r:.100}")
    if "line" in payload:  # queued before the outbox kept facts
        return str(payload["line"])
    record = payload.get("record")
    render = RENDER.get(record) if isinstance(record, str) else None
    if render is None:
        raise UnreadableRecord(f"unknown mirror record {record!r}")
    try:
        return render(payload)
    except (KeyError, TypeError, ValueError) as exc:
        raise UnreadableRecord(f"{record} record without a readable {exc}") from exc


def discord_length(text: str) -> int:
    """The length Discord checks against its limits, counted conservatively: UTF-16 code
    units, which are never fewer than the code points Discord and the sandbox count (an
    emoji such as 🛠️ is 2 code points and 3 code units)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


@dataclass(frozen=True)
class ConsoleLinks:
    """With the staff console on, a mirrored line links its dead letter (or a delivery
    retry's deliveries) to the console's page."""

    base_url: str

    def add(self, line: str, facts: Mapping[str, Any], guild_id: int) -> str:
        entry = facts.get("dead_letter_id")
        if isinstance(entry, int) and f"#{entry}" in line:
            url = f"{self.base_url}/console/g/{guild_id}/dead-letters/{entry}"
            return line.replace(f"#{entry}", f"[#{entry}]({url})", 1)
        ids = facts.get("delivery_ids")
        if facts.get("record") == "delivery_retry" and isinstance(ids, list):
            url = f"{self.base_url}/console/g/{guild_id}/deliveries"
            for delivery in ids:
                if isinstance(delivery, int):
                    line = line.replace(f"D{delivery}", f"[D{delivery}]({url})", 1)
        return line


def mirror_text(payload: Mapping[str, Any], links: ConsoleLinks | None = None,
                guild_id: int = 0) -> str:
    """The row's line as it is sent (with console links when given): cut to MAX_LINE with an
    ellipsis, so that a line alone always fits a message, and never blank."""
    line = mirror_line(payload)
    if links is not None and guild_id:
        line = links.add(line, payload, guild_id)
    if not line.strip():
        return NO_TEXT
    if discord_length(line) <= MAX_LINE:
        return line
    cut: list[str] = []
    size = 1  # the ellipsis
    for ch in line:
        size += discord_length(ch)
        if size > MAX_LINE:
            break
        cut.append(ch)
    return "".join(cut) + "…"


# ---- packing ------------------------------------------------------------------------------

def embed_descriptions(lines: Sequence[str]) -> list[str]:
    """The lines, in order, as embed descriptions: a line joins the current embed (after a
    newline) while that stays within EMBED_DESCRIPTION_MAX, else it opens the next embed.
    A message carries exactly this layout; `pack_lines` sizes a batch with the same rule."""
    descriptions: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        extra = discord_length(line) + (1 if current else 0)
        if current and size + extra > EMBED_DESCRIPTION_MAX:
            descriptions.append("\n".join(current))
            current, size = [], 0
            extra = discord_length(line)
        current.append(line)
        size += extra
    if current:
        descriptions.append("\n".join(current))
    return descriptions


def fits_one_message(descriptions: Sequence[str]) -> bool:
    """Whether Discord takes these descriptions as the embeds of one message."""
    return (len(descriptions) <= EMBEDS_PER_MESSAGE
            and all(discord_length(d) <= EMBED_DESCRIPTION_MAX for d in descriptions)
            and sum(discord_length(d) for d in descriptions) <= EMBEDS_TOTAL_MAX)


def pack_lines(lines: Sequence[str]) -> int:
    """How many leading lines (each at most MAX_LINE, as `mirror_text` gives them) fit one
    message's embeds: each description within 4,096, at most 10 embeds, at most 6,000 in
    all. At least one when there is one."""
    taken = 0
    embeds = 0  # embeds used so far, the last one `size` long
    size = 0
    total = 0
    for line in lines:
        length = discord_length(line)
        if taken and size + 1 + length <= EMBED_DESCRIPTION_MAX:
            grown, new_size, new_total = embeds, size + 1 + length, total + 1 + length
        else:
            grown, new_size, new_total = embeds + 1, length, total + length
        if taken and (grown > EMBEDS_PER_MESSAGE or new_total > EMBEDS_TOTAL_MAX):
            break
        taken += 1
        embeds, size, total = grown, new_size, new_total
    return taken


# ---- what one delivery of a lane's rows is ---------------------------------------------------

def max_batch(kind: OutboxKind) -> int:
    """Mirror rows of a channel go out together; a role change alone."""
    return MAX_BATCH_ROWS if kind is OutboxKind.MIRROR else 1


def take(rows: Sequence[Claimed], links: ConsoleLinks | None = None) -> int:
    """How many leading rows go out in one delivery: for the mirror, the lines that fit one
    message's embeds, up to the first row that cannot be rendered (that one goes alone, and
    fails alone)."""
    if rows[0].kind is not OutboxKind.MIRROR:
        return 1
    texts: list[str] = []
    for row in rows:
        try:
            texts.append(mirror_text(row.payload, links, row.guild_id))
        except UnreadableRecord:
            break
    return max(pack_lines(texts), 1)


# Discord takes a nonce of at most 25 characters: 6 (identity) + 1 + 13 (a bigint in base 36).
NONCE_MAX_LENGTH = 25
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(n: int) -> str:
    digits = ""
    while True:
        n, d = divmod(n, 36)
        digits = _BASE36[d] + digits
        if n == 0:
            return digits


def nonce(rows: Sequence[Claimed]) -> str:
    """The nonce of a batch's message: the database's identity and the batch's head row id,
    which a resend of the same batch (a retry, a takeover) carries again, so Discord returns
    the first message. Discord de-duplicates by author for a few minutes: with the identity,
    a database reset or a second database behind the same bot cannot reuse a recent nonce.
    (Rows built without an identity, in tests of the formatting, use the id alone.)"""
    head = rows[0]
    return f"{head.installation}.{_base36(head.id)}" if head.installation else str(head.id)


@dataclass(frozen=True)
class MirrorPost:
    """One log-channel message: its embeds' descriptions, in order, and its nonce."""

    channel_id: int | None
    descriptions: list[str]
    nonce: str


def mirror_post(rows: Sequence[Claimed], links: ConsoleLinks | None = None) -> MirrorPost:
    """The message that delivers a batch of mirror rows (UnreadableRecord if a row's facts
    cannot be rendered)."""
    return MirrorPost(rows[0].channel_id,
                      embed_descriptions([mirror_text(r.payload, links, r.guild_id)
                                          for r in rows]), nonce(rows))
