"""Budget signal: matches when the caller's tightest budget is running down, so that rules
can route cheaper before the budget refuses anything."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from crossroads.signals.base import SIGNALS, Signal
from crossroads.types import RoutingRequest, SignalResult, ValueSpec


@SIGNALS.register("budget")
class BudgetSignal(Signal):
    """The fraction left of the caller's tightest budget (key or team) is under ``below``.
    Its value is that fraction; without a budget (or with the state backend down) it has
    none and does not match. The fraction is read once per request, before routing."""

    kind = "budget"
    value_spec = ValueSpec("number", 0, 1, nullable=True)  # the fraction left; none without budgets

    @classmethod
    def value_spec_for(cls, config: Any) -> ValueSpec:
        """It matches exactly when the fraction left is under ``below``."""
        return replace(cls.value_spec, matched_when=(("<", config.below),))

    def compute(self, request: RoutingRequest) -> SignalResult:
        left = request.budget_remaining
        if left is None:
            return SignalResult(self.name, False, None)
        return SignalResult(self.name, left < self.config.below, round(left, 4))
