"""Shared state: budgets, rate windows, circuit breakers and counters, behind one protocol
(:class:`StateBackend`) with memory, SQLite and Redis backends."""

from __future__ import annotations

from crossroads.state.base import (
    NANO,
    Admission,
    Budget,
    GuardedState,
    Settlement,
    StateBackend,
    Window,
    open_state,
)

__all__ = [
    "NANO",
    "Admission",
    "Budget",
    "GuardedState",
    "Settlement",
    "StateBackend",
    "Window",
    "open_state",
]
