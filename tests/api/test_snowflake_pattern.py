"""The OpenAPI document's id pattern admits exactly the ids the API accepts (1..2^63-1)."""

from __future__ import annotations

import random
import re

import pytest

from bot.api.schemas import SNOWFLAKE_PATTERN, decimal_up_to
from domain.commands import MAX_SNOWFLAKE


def _samples(limit: int) -> list[int]:
    rng = random.Random(limit)
    near = [limit + d for d in range(-3, 4)] + [0, 1, 9, 10, 99, 100]
    powers = [10**k + d for k in range(len(str(limit)) + 1) for d in (-1, 0, 1)]
    spread = [rng.randrange(1, 10 * limit) for _ in range(2000)]
    # Numbers that share a long prefix with the limit, then differ.
    digits = str(limit)
    prefixes = [int(digits[:i] + str(d) + "0" * (len(digits) - i - 1) or 0)
                for i in range(len(digits)) for d in range(10)]
    return [n for n in near + powers + spread + prefixes if n >= 0]


@pytest.mark.parametrize("limit", [1, 9, 10, 100, 709, 1000, 909090, MAX_SNOWFLAKE])
def test_decimal_up_to_admits_exactly_1_to_the_limit(limit: int) -> None:
    pattern = re.compile(decimal_up_to(limit))
    for n in _samples(limit):
        assert bool(pattern.match(str(n))) == (0 < n <= limit), (limit, n)
    assert not pattern.match("0" + str(limit))  # no leading zeros


def test_the_snowflake_pattern_is_the_apis_limit() -> None:
    pattern = re.compile(SNOWFLAKE_PATTERN)
    assert pattern.match(str(MAX_SNOWFLAKE)) and not pattern.match(str(MAX_SNOWFLAKE + 1))
    assert not pattern.match("99999999999999999999")
