"""PII signal: how much personal data and how many secrets a prompt holds (:mod:`crossroads.pii`).

Its result never holds what was found: the value is the number of findings of the signal's
``types`` and the detail counts them per type (``email=2,credit_card=1``), so traces and
logs can say *that* a prompt carried a card number, never which one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from crossroads.pii import MAX_FINDINGS, PII_TYPES, count_types, find_pii
from crossroads.registry import SIGNALS
from crossroads.signals.base import Signal
from crossroads.types import RoutingRequest, SignalResult, ValueSpec


@SIGNALS.register("pii")
class PiiSignal(Signal):
    """Number of findings (value) and their types with counts (detail)."""

    kind = "pii"
    value_spec = ValueSpec("count", 0, len(PII_TYPES) * MAX_FINDINGS)  # findings of ``types``

    @classmethod
    def value_spec_for(cls, config: Any) -> ValueSpec:
        """It matches exactly when the count reaches ``min_count``."""
        assert cls.value_spec is not None
        return replace(cls.value_spec, matched_when=((">=", config.min_count),))

    def prepare(self) -> None:
        self._types = tuple(self.config.types) or PII_TYPES

    def compute(self, request: RoutingRequest) -> SignalResult:
        counts = count_types(find_pii(self.text_of(request), self._types))
        total = sum(counts.values())
        detail = ",".join(f"{t}={n}" for t, n in counts.items()) or None
        return SignalResult(self.name, total >= self.config.min_count, total, detail=detail)
