"""Settlements are written in batches, kept while the backend is down, written when it is
back, and dropped (counted) only past the queue's bound or the shutdown deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from crossroads.state import Budget, GuardedState, Settlement
from crossroads.state.memory import MemoryState
from crossroads.state.settler import Settler


class Flaky(MemoryState):
    """A memory backend that refuses connections while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.batches: list[int] = []

    async def settle(self, settlements: Sequence[Settlement], now: float) -> None:
        if self.down:
            raise ConnectionRefusedError("down")
        self.batches.append(len(settlements))
        await super().settle(settlements, now)


BUDGET = Budget("b", 10**9, None)


async def until(condition: object) -> None:
    async with asyncio.timeout(5):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_settlements_wait_for_the_backend_and_are_all_written() -> None:
    backend = Flaky()
    settler = Settler(GuardedState(backend, 1.0, 0.05), max_pending=1000)
    backend.down = True
    for i in range(300):
        settler.put(Settlement([BUDGET], f"h{i}", 2))
    await asyncio.sleep(0.1)
    assert settler.pending == 300 and settler.written == 0
    backend.down = False
    await until(lambda: settler.written == 300)
    assert backend.batches == [256, 44]  # batched
    assert await backend.budget_used(["b"], time.time()) == [600]
    assert settler.stats() == {"pending": 0, "written": 300, "dropped": 0}
    await settler.drain(1)


async def test_past_the_bound_and_at_shutdown_settlements_are_dropped_and_counted() -> None:
    backend = Flaky()
    backend.down = True
    settler = Settler(GuardedState(backend, 1.0, 60), max_pending=5)
    for i in range(8):
        settler.put(Settlement([BUDGET], f"h{i}", 1))
    assert settler.dropped == 3
    started = time.monotonic()
    await settler.drain(10)  # the backend is down for longer than the deadline: no wait
    assert time.monotonic() - started < 2
    assert settler.dropped == 8 and settler.pending == 0


class Gated(MemoryState):
    """A memory backend whose writes wait for ``gate``; it records each batch's holds."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.batches: list[list[str]] = []

    async def settle(self, settlements: Sequence[Settlement], now: float) -> None:
        self.batches.append([s.hold for s in settlements])
        await self.gate.wait()
        await super().settle(settlements, now)


async def test_under_steady_traffic_each_write_waits_for_more_settlements(
    monkeypatch: object,
) -> None:
    import crossroads.state.settler as settler_module

    monkeypatch.setattr(settler_module, "LINGER_S", 0.5)  # type: ignore[attr-defined]
    backend = Gated()
    settler = Settler(GuardedState(backend, 5.0, 0.05), max_pending=1000)
    settler.put(Settlement([BUDGET], "a", 1))
    await until(lambda: backend.batches)
    settler.put(Settlement([BUDGET], "b", 1))  # arrives while "a" is being written
    backend.gate.set()
    await asyncio.sleep(0.05)  # well inside the linger: "b" must not go alone
    settler.put(Settlement([BUDGET], "c", 1))
    await until(lambda: settler.written == 3)
    assert backend.batches == [["a"], ["b", "c"]]
    await settler.drain(1)


class Slow(MemoryState):
    """A memory backend whose first write is applied and then answers too late."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    async def settle(self, settlements: Sequence[Settlement], now: float) -> None:
        self.writes += 1
        await super().settle(settlements, now)
        if self.writes == 1:
            await asyncio.sleep(0.5)  # past the guard's timeout: the settler sends it again


async def test_a_write_applied_but_timed_out_is_sent_again_and_charged_once() -> None:
    backend = Slow()
    settler = Settler(GuardedState(backend, 0.1, 0.05), max_pending=1000)
    for i in range(3):
        settler.put(Settlement([BUDGET], f"h{i}", 7, marker=f"settled:h{i}"))
    await until(lambda: settler.written == 3)
    assert backend.writes == 2
    assert await backend.budget_used(["b"], time.time()) == [21]
    await settler.drain(1)
