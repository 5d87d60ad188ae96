"""The budget signal compares the caller's remaining budget fraction with ``below``."""

from __future__ import annotations

from crossroads.config import BudgetSignal as BudgetSignalConfig
from crossroads.signals import build_signal
from crossroads.types import RoutingRequest


def test_matches_under_the_threshold_and_has_no_value_without_a_budget() -> None:
    signal = build_signal(BudgetSignalConfig(kind="budget", name="low", below=0.25))
    low = signal.compute(RoutingRequest(budget_remaining=0.1))
    assert (low.name, low.matched, low.value) == ("budget:low", True, 0.1)
    assert signal.compute(RoutingRequest(budget_remaining=0.25)).matched is False
    none = signal.compute(RoutingRequest())
    assert (none.matched, none.value) == (False, None)
