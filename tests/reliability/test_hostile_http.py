"""schemathesis with a larger budget than the regular suite (3x): zero 5xx, every answer
documented and matching its schema, invalid data refused."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings

from tests.api.support import AUTH
from tests.api.test_schemathesis import CHECKS, MAX_EXAMPLES, live_api, schema  # noqa: F401

DEEP_EXAMPLES = 3 * MAX_EXAMPLES


@schema.parametrize()
@settings(max_examples=DEEP_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_a_larger_budget_of_generated_requests_finds_no_5xx(case: Any, live_api: str  # noqa: F811
                                                            ) -> None:
    case.call_and_validate(base_url=live_api, headers=AUTH, checks=CHECKS, timeout=10)
