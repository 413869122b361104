"""/dlq rendering: the list footer's totals ("N+" when the count stopped), and the
history within one embed."""

from __future__ import annotations

from datetime import UTC, datetime

from cogs.dlq import COUNT_LIMIT
from cogs.dlq_views import DESCRIPTION_MAX, history_embed, page_embed, stale_text
from domain.commands import LedgerEntry
from domain.entries import Page, RemediationRecord
from domain.errors import StaleEntry
from domain.lifecycle import Operation, Source, State


def test_footer_shows_exact_totals_and_n_plus_when_the_count_stopped() -> None:
    exact = page_embed(Page([], None, 23), "status open", 1, COUNT_LIMIT)
    assert exact.footer.text is not None and exact.footer.text.startswith("23 in total")
    # From the counters: exact past the limit too.
    large = page_embed(Page([], None, 90_000), "status open", 1, COUNT_LIMIT)
    assert large.footer.text is not None and large.footer.text.startswith("90000 in total")
    # Counted (a user filter) and stopped at the limit: "more than".
    many = page_embed(Page([], None, COUNT_LIMIT + 1, total_exact=False), "user", 1,
                      COUNT_LIMIT)
    assert many.footer.text is not None and many.footer.text.startswith(f"{COUNT_LIMIT}+ in")


def test_history_fits_one_embed_and_says_when_older_rows_are_left_out() -> None:
    def row(n: int, note: str) -> RemediationRecord:
        return RemediationRecord(n, "dead_letter", 7, 7, 42, "staff", "dismiss", "dismissed",
                                 "open", "dismissed", note, None, f"c{n}",
                                 datetime.now(UTC))

    few = history_embed(7, [row(2, "second"), row(1, "first")], more=False)
    assert few.description is not None
    assert few.description.index("second") < few.description.index("first")  # as given
    assert few.footer.text == "2 shown, newest first"
    many = history_embed(7, [row(n, "x" * 1000) for n in range(25, 0, -1)], more=False)
    assert many.description is not None and len(many.description) <= DESCRIPTION_MAX
    assert len(many) <= 6000
    assert many.footer.text is not None and "older rows" in many.footer.text


def test_a_stale_warning_says_when_it_lists_only_the_newest_transitions() -> None:
    def entry(v: int) -> LedgerEntry:
        return LedgerEntry(id=v, version=v, operation=Operation.VERIFY,
                           from_state=State.VERIFICATION_PENDING, to_state=State.VERIFIED,
                           source=Source.API, actor_id=None, reason=None,
                           idempotency_key=f"k{v}", correlation_id="c",
                           created_at=datetime(2026, 12, 2, tzinfo=UTC))
    many = StaleEntry(7, "verify", "verification_pending", 10, "verified", 22,
                      [entry(v) for v in range(22, 10, -1)])
    text = stale_text(many)
    assert "after 12 transition(s); the newest 10:" in text
    assert text.count("• v") == 10 and "• v22 " in text and "• v12 " not in text
    few = StaleEntry(7, "verify", "verification_pending", 10, "verified", 12,
                     [entry(12), entry(11)])
    assert "after 2 transition(s):" in stale_text(few)
