"""The /dlq list footer: exact totals, and "N+" past the count limit."""

from __future__ import annotations

from cogs.dlq import COUNT_LIMIT
from cogs.dlq_views import page_embed
from domain.entries import Page


def test_footer_shows_the_exact_total_up_to_the_limit_and_n_plus_past_it() -> None:
    exact = page_embed(Page([], None, 23), "status open", 1, COUNT_LIMIT)
    assert exact.footer.text is not None and exact.footer.text.startswith("23 in total")
    many = page_embed(Page([], None, COUNT_LIMIT + 1), "status open", 1, COUNT_LIMIT)
    assert many.footer.text is not None and many.footer.text.startswith(f"{COUNT_LIMIT}+ in")
