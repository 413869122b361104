"""Mirror records as the log channel shows them, and how their lines are packed into the
embeds of one message (no database, no Discord)."""

from __future__ import annotations

import random
from typing import Any

import discord
import pytest

from bot import formatting
from bot.delivery import DiscordDeliverer
from bot.formatting import (
    EMBED_DESCRIPTION_MAX,
    EMBEDS_PER_MESSAGE,
    EMBEDS_TOTAL_MAX,
    MAX_BATCH_ROWS,
    UnreadableRecord,
    dead_letter_line,
    discord_length,
    embed_descriptions,
    fits_one_message,
    mirror_post,
    mirror_text,
    pack_lines,
    remediation_line,
    take,
    transition_line,
)
from domain.mirror import dead_letter_facts, remediation_facts, transition_facts
from domain.outbox import Claimed, DeliveryError
from domain.vocabulary import OutboxKind, target_name
from sandbox.validation import validate_message

USER = 100_000_000_000_000_001
STAFF = 1_200_000_000_000_000_001
ENTRY: dict[str, Any] = {
    "id": 5, "operation": "verify", "user_id": USER, "from_state": "verification_pending",
    "to_state": "verified", "reason_code": "retries_exhausted", "attempts": 5, "source": "api"}


def _rows(payloads: list[dict[str, Any]]) -> list[Claimed]:
    return [Claimed(i, 1, OutboxKind.MIRROR, 10, "channel:10", payload, 0)
            for i, payload in enumerate(payloads, start=1)]


def _lines(lines: list[str]) -> list[Claimed]:
    """Rows of these lines, as rows queued before the outbox kept facts carry them."""
    return _rows([{"line": line, "record": "remediation"} for line in lines])


def _message(rows: list[Claimed]) -> list[str]:
    """The embed descriptions of the message that delivers a batch."""
    return mirror_post(rows).descriptions


def _split(rows: list[Claimed]) -> list[list[Claimed]]:
    """Batches the worker would send, one after the other (it claims up to MAX_BATCH_ROWS
    with a lane's head and keeps what `take` says)."""
    batches = []
    while rows:
        n = take(rows[:MAX_BATCH_ROWS])
        batches.append(rows[:n])
        rows = rows[n:]
    return batches


def _remediation(n: int, note: str | None = None) -> dict[str, Any]:
    entry = {"id": 4_200_000 + n, "operation": "verify", "user_id": USER + n,
             "from_state": "verification_pending", "to_state": "verified"}
    return remediation_facts("retry", STAFF, entry, "resolved", None, note)


def _accepted_by_discord(descriptions: list[str]) -> None:
    """The sandbox's copy of Discord's checks (code points, as Discord counts)."""
    validate_message({"embeds": [{"description": d} for d in descriptions]}, [])


# ---- lines ------------------------------------------------------------------------------

def test_each_record_renders_as_the_log_channel_has_always_shown_it() -> None:
    assert dead_letter_line(dead_letter_facts(ENTRY)) == (
        f"🟥 Dead letter #5: `verify` for <@{USER}> (verification_pending → verified) "
        "retries_exhausted after 5 attempt(s), source api")
    assert dead_letter_line(dead_letter_facts({**ENTRY, "from_state": None})) == (
        f"🟥 Dead letter #5: `verify` for <@{USER}> (new → verified) "
        "retries_exhausted after 5 attempt(s), source api")
    assert remediation_line(remediation_facts("retry", STAFF, ENTRY, "resolved", None, None)) == (
        f"🛠️ <@{STAFF}> retried #5 (`verify` for <@{USER}>, verification_pending → "
        "verified): resolved")
    assert remediation_line(remediation_facts(
        "retry", STAFF, ENTRY, "failed", "WriteConflict: the member changed", None)) == (
        f"🛠️ <@{STAFF}> retried #5 (`verify` for <@{USER}>, verification_pending → "
        "verified): failed: WriteConflict: the member changed")
    assert transition_line(transition_facts(USER, "join", None, "joined", "bot", None)) == (
        f"➡️ <@{USER}> `join` (new → joined), source bot")
    assert transition_line(transition_facts(USER, "verify", "verification_pending",
                                            "verified", "staff", STAFF)) == (
        f"➡️ <@{USER}> `verify` (verification_pending → verified), source staff "
        f"by <@{STAFF}>")


def test_a_missing_target_reads_the_same_in_the_log_channel_and_in_dlq() -> None:
    """A dead letter whose operation was not allowed has no target state: both doors say
    "joined → ?" (the log channel said "joined → new", as if the member were new)."""
    not_allowed = {**ENTRY, "operation": "verify", "from_state": "joined", "to_state": None,
                   "reason_code": "not_applicable"}
    line = dead_letter_line(dead_letter_facts(not_allowed))
    assert "(joined → ?)" in line
    assert f"joined → {target_name(None)}" == "joined → ?"
    assert "→ ?" in remediation_line(remediation_facts("dismiss", STAFF, not_allowed,
                                                       "dismissed", None, "n"))


def test_bidi_controls_are_stripped_from_what_is_mirrored() -> None:
    """A right-to-left override in a note would make the rest of the log line read
    backwards: mirrored text carries none."""
    note = "fine \u202eelif\u202c and \u2067isolated\u2069"
    line = remediation_line(remediation_facts("dismiss", STAFF, ENTRY, "dismissed", None, note))
    assert line.endswith("— “fine elif and isolated”")


def test_a_note_is_cut_to_300_characters_and_escaped_with_discord_py() -> None:
    note = "@everyone look <@1234567890123456789> **now** (see <#1>) @here <@&123456789012345678>"
    line = remediation_line(remediation_facts("dismiss", STAFF, ENTRY, "dismissed", None, note))
    # Markdown escaped, @everyone / @here / user and role mentions broken by a zero-width
    # space: shown as typed, and no ping even if allowed_mentions were ever forgotten.
    assert line.endswith(
        "): dismissed — “@\u200beveryone look <@\u200b1234567890123456789> \\*\\*now\\*\\* "
        "(see <#1>) @\u200bhere <@\u200b&123456789012345678>”")
    escaped = discord.utils.escape_mentions(discord.utils.escape_markdown(note))
    assert line.endswith(f"— “{escaped}”")
    long = remediation_line(remediation_facts("resolve", STAFF, ENTRY, "resolved", None, "n" * 400))
    assert long.endswith(f"— “{'n' * 300}”")
    assert "—" not in remediation_line(remediation_facts("reopen", STAFF, ENTRY, "reopened",
                                                         None, ""))


def test_a_row_queued_with_its_line_is_delivered_with_that_line() -> None:
    """Rows queued before the outbox kept facts: {"line": ..., "record": ...} (and a few
    ids); the line is sent as it was written, not rendered again."""
    old = {"line": "🛠️ <@1> retried #7 (`verify` for <@2>, new → verified): resolved — "
                   "“a \\(note\\)”", "record": "remediation", "dead_letter_id": 7,
           "action": "retry"}
    assert mirror_text(old) == old["line"]
    rows = _rows([old, _remediation(1)])
    assert take(rows) == 2
    assert _message(rows) == [old["line"] + "\n" + remediation_line(_remediation(1))]


def test_facts_that_cannot_be_rendered_go_alone_and_fail_alone() -> None:
    unknown = {"record": "gossip", "user_id": 1}
    missing = {"record": "dead_letter", "dead_letter_id": 3}
    for payload in (unknown, missing, {}, ["not", "an", "object"]):
        with pytest.raises(UnreadableRecord):
            mirror_text(payload)  # type: ignore[arg-type]
    good = _remediation(1)
    rows = _rows([good, good, missing, good])
    assert take(rows) == 2  # the batch ends before the unreadable row
    assert take(rows[2:]) == 1  # which is then a batch of its own


async def test_the_deliverer_refuses_an_unreadable_row_without_closing_the_lane() -> None:
    deliverer = DiscordDeliverer(discord.Client(intents=discord.Intents.none()))
    with pytest.raises(DeliveryError) as failed:
        await deliverer.deliver(_rows([{"record": "gossip"}]))
    assert not failed.value.retryable and not failed.value.whole_lane
    assert "unreadable mirror record" in str(failed.value)


def test_a_batch_goes_out_with_its_head_row_id_as_nonce() -> None:
    rows = _lines(["a", "b", "c"])[1:]
    assert mirror_post(rows).nonce == "2" and mirror_post(rows).channel_id == 10
    # With the database's identity: at most 25 characters, even for the largest id.
    for row_id, expected in ((2, "k3x9q0.2"), (36, "k3x9q0.10"),
                             (2**63 - 1, "k3x9q0.1y2p0ij32e8e7")):
        head = Claimed(row_id, 1, OutboxKind.MIRROR, 10, "channel:10", {}, 0, "k3x9q0")
        assert formatting.nonce([head]) == expected
        assert len(expected) <= formatting.NONCE_MAX_LENGTH
    assert formatting.max_batch(OutboxKind.MIRROR) == MAX_BATCH_ROWS
    role = Claimed(9, 1, OutboxKind.ROLE_SYNC, None, "member:1:2",
                   {"user_id": 2, "role_id": 3, "action": "add"}, 0)
    assert formatting.max_batch(OutboxKind.ROLE_SYNC) == 1 and take([role, role]) == 1


# ---- packing ------------------------------------------------------------------------------

def test_discord_length_counts_utf16_units_never_fewer_than_code_points() -> None:
    assert discord_length("abc") == 3
    assert discord_length("→") == 1  # U+2192: one unit
    assert discord_length("🛠️") == 3  # U+1F6E0 (two units) + U+FE0F
    assert discord_length("➡️") == 2  # U+27A1 + U+FE0F
    assert discord_length("🟥") == 2
    for line in (remediation_line(_remediation(1)), "🛠️" * 50, "x→y"):
        assert discord_length(line) >= len(line)
        assert discord_length(line) == len(line.encode("utf-16-le")) // 2


def test_realistic_remediation_lines_fill_48_a_message() -> None:
    facts = [_remediation(n) for n in range(1000)]
    lines = [remediation_line(f) for f in facts]
    assert 120 <= len(lines[0]) <= 125
    batches = _split(_rows(facts))
    sizes = [len(b) for b in batches]
    assert sizes[:-1] == [48] * (len(batches) - 1) and sum(sizes) == 1000
    assert len(batches) == 21  # 1,000 records: 21 messages instead of 62 of 2,000 characters
    sent = [line for b in batches for d in _message(b) for line in d.split("\n")]
    assert sent == lines  # every line once, in order
    for batch in batches:
        descriptions = _message(batch)
        assert len(descriptions) == 2 and fits_one_message(descriptions)
        _accepted_by_discord(descriptions)


@pytest.mark.parametrize("seed", range(20))
def test_random_lines_respect_every_limit_and_keep_their_order(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = "ab→ 🛠️➡️🟥<@>`#*_"
    lines = ["".join(rng.choice(alphabet) for _ in range(rng.choice((1, 40, 120, 700, 2500))))
             for _ in range(400)]
    batches = _split(_lines(lines))
    sent = []
    for batch in batches:
        assert [r.id for r in batch] == list(range(batch[0].id, batch[0].id + len(batch)))
        descriptions = _message(batch)
        assert fits_one_message(descriptions)
        assert len(descriptions) <= EMBEDS_PER_MESSAGE
        assert all(discord_length(d) <= EMBED_DESCRIPTION_MAX for d in descriptions)
        assert sum(discord_length(d) for d in descriptions) <= EMBEDS_TOTAL_MAX
        _accepted_by_discord(descriptions)
        sent += [line for d in descriptions for line in d.split("\n")]
    assert sent == [line if line.strip() else "(no text)" for line in lines]


def test_a_batch_is_the_longest_prefix_that_fits() -> None:
    rows = _lines(["x" * 999] * 10)  # 1,000 with the newline: 4 per embed
    # 4 lines (3,999) in one embed, 2 in the next (1,999): 5,998; a 7th would pass 6,000.
    assert take(rows) == 6 and _message(rows[:6]) == ["\n".join(["x" * 999] * 4),
                                                      "\n".join(["x" * 999] * 2)]
    assert not fits_one_message(_message(rows[:7]))
    assert pack_lines(["x" * 999] * 10) == 6 and pack_lines([]) == 0


def test_embed_and_message_limits() -> None:
    # 3,000-character lines: one per embed, and only two within 6,000.
    assert take(_lines(["y" * 3000] * 5)) == 2
    assert not fits_one_message(["z"] * (EMBEDS_PER_MESSAGE + 1))
    assert fits_one_message(["z"] * EMBEDS_PER_MESSAGE)
    assert not fits_one_message(["z" * (EMBED_DESCRIPTION_MAX + 1)])
    assert not fits_one_message(["z" * 3000, "z" * 3001])
    # A line opens a new embed only when it does not fit the current one, so two embeds in
    # a row hold more than 4,095: within 6,000 a message never needs more than 3 embeds.
    lines = ["q" * n for n in (2000, 2096, 1, 4000, 5)]
    assert embed_descriptions(lines) == ["q" * 2000, "q" * 2096 + "\nq",
                                         "q" * 4000 + "\n" + "q" * 5]


def test_an_overlong_line_is_cut_with_an_ellipsis_and_sent_alone() -> None:
    long = "🛠️ " + "w" * 10_000
    rows = _lines([long, "next"])
    text = mirror_text(rows[0].payload)
    assert text.endswith("…") and long.startswith(text[:-1])
    assert discord_length(text) == EMBED_DESCRIPTION_MAX
    # Alone in a full embed; a short next line opens a second one.
    assert take(rows) == 2 and _message(rows) == [text, "next"]
    _accepted_by_discord(_message(rows))
    assert take(_lines([long, "v" * 2000])) == 1  # 6,097 in all: too much
    # An emoji across the cut is not split in half.
    cut = mirror_text({"line": "🟥" * 3000})
    assert cut == "🟥" * 2047 + "…" and discord_length(cut) == 4095


def test_a_blank_line_still_makes_a_valid_embed() -> None:
    rows = _lines(["", "   "])
    assert _message(rows) == ["(no text)\n(no text)"]
    _accepted_by_discord(_message(rows))


def test_every_kind_of_line_fits_with_its_emoji() -> None:
    entry = {**ENTRY, "user_id": 10**18, "from_state": None}
    facts = [dead_letter_facts(entry),
             remediation_facts("dismiss", 10**18, entry, "dismissed", None, "🛠️➡️ " * 100),
             transition_facts(10**18, "join", None, "joined", "bot", 10**18)] * 60
    for batch in _split(_rows(facts)):
        descriptions = _message(batch)
        assert fits_one_message(descriptions)
        _accepted_by_discord(descriptions)


def test_with_the_console_on_a_line_links_its_dead_letter_or_deliveries() -> None:
    links = formatting.ConsoleLinks("https://lifeline.example")
    facts = {"record": "dead_letter", "dead_letter_id": 12, "user_id": 5,
             "operation": "verify", "from_state": "verification_pending",
             "to_state": "verified", "reason_code": "retries_exhausted", "attempts": 5,
             "source": "api"}
    line = formatting.mirror_text(facts, links, 777)
    assert "[#12](https://lifeline.example/console/g/777/dead-letters/12)" in line
    assert formatting.mirror_text(facts) == formatting.mirror_line(facts)  # console off
    retry = {"record": "delivery_retry", "actor_id": 9, "delivery_ids": [41, 42],
             "matched": 2, "requeued": 2, "stale": 0, "waiting": 0}
    line = formatting.mirror_text(retry, links, 777)
    assert line.count("](https://lifeline.example/console/g/777/deliveries)") == 2
    assert formatting.discord_length(line) <= formatting.MAX_LINE
