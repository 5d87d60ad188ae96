"""State in the process's memory: exact and fast, but each worker process has its own, and a
restart forgets it. For tests and a single worker that may lose its counts."""

from __future__ import annotations

import heapq
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from crossroads.state.base import (
    SETTLED_TTL_S,
    Admission,
    Budget,
    Settlement,
    StateBackend,
    Window,
    first_fitting,
)

FOREVER = float("inf")


@dataclass(slots=True)
class _Budget:
    spent: int = 0
    held: int = 0
    holds: dict[str, tuple[int, float]] = field(default_factory=dict)  # id -> (amount, until)
    expiry: list[tuple[float, str]] = field(default_factory=list)  # a heap of (until, id)
    expires: float = FOREVER

    def used(self, now: float) -> int:
        expiry = self.expiry
        while expiry and expiry[0][0] <= now:
            until, hold = heapq.heappop(expiry)
            entry = self.holds.get(hold)
            if entry is not None and entry[1] == until:
                self.release(hold)
        return self.spent + self.held

    def hold(self, hold: str, amount: int, until: float) -> None:
        self.release(hold)
        self.holds[hold] = (amount, until)
        self.held += amount
        heapq.heappush(self.expiry, (until, hold))

    def release(self, hold: str) -> None:
        entry = self.holds.pop(hold, None)
        if entry is not None:
            self.held -= entry[0]


class MemoryState(StateBackend):
    """Every operation runs to completion without awaiting, so each is atomic."""

    name = "memory"

    def __init__(self) -> None:
        self._windows: dict[str, list[float]] = {}  # key -> [used, expires]
        self._budgets: dict[str, _Budget] = {}
        self._records: dict[str, tuple[str, float]] = {}
        self._counters: dict[str, tuple[dict[str, int], float]] = {}
        self._settled: dict[str, float] = {}  # marker -> until, in the order set

    def _window(self, key: str, now: float) -> list[float] | None:
        entry = self._windows.get(key)
        if entry is not None and entry[1] <= now:
            del self._windows[key]
            return None
        return entry

    def _budget(self, key: str, now: float) -> _Budget:
        entry = self._budgets.get(key)
        if entry is None or entry.expires <= now:
            entry = self._budgets[key] = _Budget()
        return entry

    async def admit(
        self,
        windows: Sequence[Window],
        budgets: Sequence[Budget],
        costs: Sequence[int],
        hold: str,
        hold_until: float,
        now: float,
    ) -> Admission:
        used: list[int] = []
        for i, w in enumerate(windows):
            entry = self._window(w.key, now)
            count = int(entry[0]) if entry else 0
            if count + w.cost > w.limit:
                return Admission("window", window=i, window_used=[*used, count])
            used.append(count)
        states = [self._budget(b.key, now) for b in budgets]
        spent = [s.used(now) for s in states]
        choice = first_fitting(costs, spent, budgets)
        if choice < 0:
            return Admission("budget", window_used=used, budget_used=spent)
        after = []
        for w, count in zip(windows, used, strict=True):
            entry = self._window(w.key, now)
            if entry is None:
                entry = self._windows[w.key] = [0, now + w.ttl_s]
            entry[0] += w.cost
            after.append(count + w.cost)
        for b, state in zip(budgets, states, strict=True):
            state.hold(hold, costs[choice], hold_until)
            state.expires = FOREVER if b.ttl_s is None else now + b.ttl_s
        return Admission(None, choice=choice, window_used=after, budget_used=spent)

    async def settle(self, settlements: Sequence[Settlement], now: float) -> None:
        settled = self._settled
        while settled and next(iter(settled.values())) <= now:
            del settled[next(iter(settled))]  # markers expire in the order they were set
        for s in settlements:
            if s.marker:
                if settled.get(s.marker, 0.0) > now:
                    continue
                settled.pop(s.marker, None)  # set again at the end: the order is by expiry
                settled[s.marker] = now + SETTLED_TTL_S
            for b in s.budgets:
                state = self._budget(b.key, now)
                state.release(s.hold)
                state.spent += s.amount
                state.expires = FOREVER if b.ttl_s is None else now + b.ttl_s
            for key, delta in s.windows:
                entry = self._window(key, now)
                if entry is not None:
                    entry[0] += delta

    async def budget_used(self, keys: Sequence[str], now: float) -> list[int]:
        return [self._budget(key, now).used(now) for key in keys]

    async def put_record(self, key: str, value: str, ttl_s: float) -> None:
        self._records[key] = (value, time.time() + ttl_s)

    async def get_records(self, keys: Sequence[str]) -> list[str | None]:
        now = time.time()
        out: list[str | None] = []
        for key in keys:
            entry = self._records.get(key)
            out.append(entry[0] if entry is not None and entry[1] > now else None)
        return out

    async def add_counters(self, updates: dict[str, dict[str, int]], ttl_s: float) -> None:
        now = time.time()
        for key, deltas in updates.items():
            entry = self._counters.get(key)
            counters = entry[0] if entry is not None and entry[1] > now else {}
            for name, delta in deltas.items():
                counters[name] = counters.get(name, 0) + delta
            self._counters[key] = (counters, now + ttl_s)

    async def read_counters(self, keys: Sequence[str]) -> list[dict[str, int]]:
        now = time.time()
        out = []
        for key in keys:
            entry = self._counters.get(key)
            out.append(dict(entry[0]) if entry is not None and entry[1] > now else {})
        return out


def open_memory(spec: str, **settings: Any) -> MemoryState:
    """``state.backend: memory``."""
    return MemoryState()
