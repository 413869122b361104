"""The /dlq list footer: exact totals (however large), and "N+" when the count stopped."""

from __future__ import annotations

from cogs.dlq import COUNT_LIMIT
from cogs.dlq_views import page_embed
from domain.entries import Page


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
