"""How mirror lines are packed into the embeds of one message (no database, no Discord)."""

from __future__ import annotations

import random

import pytest

from domain.mirror import dead_letter_line, remediation_line, transition_line
from domain.outbox import (
    EMBED_DESCRIPTION_MAX,
    EMBEDS_PER_MESSAGE,
    EMBEDS_TOTAL_MAX,
    MAX_BATCH_ROWS,
    Claimed,
    discord_length,
    embed_descriptions,
    fits_one_message,
    mirror_text,
    pack_lines,
)
from sandbox.validation import validate_message


def _rows(lines: list[str]) -> list[Claimed]:
    return [Claimed(i, 1, "mirror", 10, "channel:10", {"line": line}, 0)
            for i, line in enumerate(lines, start=1)]


def _message(rows: list[Claimed]) -> list[str]:
    """What the worker sends for a packed batch."""
    return embed_descriptions([mirror_text(r) for r in rows])


def _split(rows: list[Claimed]) -> list[list[Claimed]]:
    """Batches the worker would send, one after the other."""
    batches = []
    while rows:
        batch = pack_lines(rows[:MAX_BATCH_ROWS])
        batches.append(batch)
        rows = rows[len(batch):]
    return batches


def _remediation(n: int) -> str:
    entry = {"id": 4_200_000 + n, "operation": "verify", "user_id": 100_000_000_000_000_001 + n,
             "from_state": "verification_pending", "to_state": "verified"}
    return remediation_line("retried", 1_200_000_000_000_000_001, entry, "resolved", None)


def _accepted_by_discord(descriptions: list[str]) -> None:
    """The sandbox's copy of Discord's checks (code points, as Discord counts)."""
    validate_message({"embeds": [{"description": d} for d in descriptions]}, [])


def test_discord_length_counts_utf16_units_never_fewer_than_code_points() -> None:
    assert discord_length("abc") == 3
    assert discord_length("→") == 1  # U+2192: one unit
    assert discord_length("🛠️") == 3  # U+1F6E0 (two units) + U+FE0F
    assert discord_length("➡️") == 2  # U+27A1 + U+FE0F
    assert discord_length("🟥") == 2
    for line in (_remediation(1), "🛠️" * 50, "x→y"):
        assert discord_length(line) >= len(line)
        assert discord_length(line) == len(line.encode("utf-16-le")) // 2


def test_realistic_remediation_lines_fill_48_a_message() -> None:
    lines = [_remediation(n) for n in range(1000)]
    assert 120 <= len(lines[0]) <= 125
    batches = _split(_rows(lines))
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
    batches = _split(_rows(lines))
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
    rows = _rows(["x" * 999] * 10)  # 1,000 with the newline: 4 per embed
    batch = pack_lines(rows)
    # 4 lines (3,999) in one embed, 2 in the next (1,999): 5,998; a 7th would pass 6,000.
    assert len(batch) == 6 and _message(batch) == ["\n".join(["x" * 999] * 4),
                                                   "\n".join(["x" * 999] * 2)]
    assert not fits_one_message(_message(rows[:7]))


def test_embed_and_message_limits() -> None:
    # 3,000-character lines: one per embed, and only two within 6,000.
    assert len(pack_lines(_rows(["y" * 3000] * 5))) == 2
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
    rows = _rows([long, "next"])
    text = mirror_text(rows[0])
    assert text.endswith("…") and long.startswith(text[:-1])
    assert discord_length(text) == EMBED_DESCRIPTION_MAX
    # Alone in a full embed; a short next line opens a second one.
    assert pack_lines(rows) == rows and _message(rows) == [text, "next"]
    _accepted_by_discord(_message(rows))
    assert pack_lines(_rows([long, "v" * 2000])) == _rows([long])  # 6,097 in all: too much
    # An emoji across the cut is not split in half.
    emoji = _rows(["🟥" * 3000])[0]
    cut = mirror_text(emoji)
    assert cut == "🟥" * 2047 + "…" and discord_length(cut) == 4095


def test_a_blank_line_still_makes_a_valid_embed() -> None:
    rows = _rows(["", "   "])
    assert _message(rows) == ["(no text)\n(no text)"]
    _accepted_by_discord(_message(rows))


def test_every_kind_of_line_fits_with_its_emoji() -> None:
    entry = {"id": 5, "operation": "verify", "user_id": 10**18, "from_state": None,
             "to_state": "verified", "reason_code": "retries_exhausted", "attempts": 5,
             "source": "api"}
    lines = [dead_letter_line(entry), remediation_line("dismissed", 10**18, entry, "dismissed",
                                                       "🛠️➡️ " * 100),
             transition_line(10**18, "join", None, "joined", "bot", 10**18)] * 60
    for batch in _split(_rows(lines)):
        descriptions = _message(batch)
        assert fits_one_message(descriptions)
        _accepted_by_discord(descriptions)
