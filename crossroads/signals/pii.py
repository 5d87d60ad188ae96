"""PII signal: how much personal data and how many secrets a prompt holds (:mod:`crossroads.pii`).

Its result never holds what was found: the value is the number of findings of the signal's
``types`` and the detail counts them per type (``email=2,credit_card=1``), so traces and
logs can say *that* a prompt carried a card number, never which one.
"""

from __future__ import annotations

from crossroads.pii import PII_TYPES, count_types, find_pii
from crossroads.registry import SIGNALS
from crossroads.signals.base import Signal
from crossroads.types import RoutingRequest, SignalResult


@SIGNALS.register("pii")
class PiiSignal(Signal):
    """Number of findings (value) and their types with counts (detail)."""

    kind = "pii"

    def prepare(self) -> None:
        self._types = tuple(self.config.types) or PII_TYPES

    def compute(self, request: RoutingRequest) -> SignalResult:
        counts = count_types(find_pii(self.text_of(request), self._types))
        total = sum(counts.values())
        detail = ",".join(f"{t}={n}" for t, n in counts.items()) or None
        return SignalResult(self.name, total >= self.config.min_count, total, detail=detail)
