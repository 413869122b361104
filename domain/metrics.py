"""Counters the services report to. The HTTP API exports them in Prometheus format."""

from __future__ import annotations

from collections import Counter
from typing import Protocol


class Metrics(Protocol):
    def transition(self, operation: str, source: str, outcome: str) -> None: ...
    def conflict(self, operation: str) -> None: ...
    def retry(self, operation: str) -> None: ...
    def dead_letter(self, reason_code: str) -> None: ...
    def remediation(self, action: str, outcome: str) -> None: ...
    def delivery(self, outcome: str) -> None: ...


class CountingMetrics:
    """In-process counters; also what tests and the demo read."""

    def __init__(self) -> None:
        self.transitions: Counter[tuple[str, str, str]] = Counter()
        self.conflicts: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()
        self.dead_letters: Counter[str] = Counter()
        self.remediations: Counter[tuple[str, str]] = Counter()
        self.deliveries: Counter[str] = Counter()

    def transition(self, operation: str, source: str, outcome: str) -> None:
        self.transitions[(operation, source, outcome)] += 1

    def conflict(self, operation: str) -> None:
        self.conflicts[operation] += 1

    def retry(self, operation: str) -> None:
        self.retries[operation] += 1

    def dead_letter(self, reason_code: str) -> None:
        self.dead_letters[reason_code] += 1

    def remediation(self, action: str, outcome: str) -> None:
        self.remediations[(action, outcome)] += 1

    def delivery(self, outcome: str) -> None:
        self.deliveries[outcome] += 1
