"""One contract for every state backend: memory, SQLite (a real file) and Redis (the
machine's server, a unique key prefix per run; skipped when it does not answer)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crossroads.exceptions import StateUnavailableError
from crossroads.state import Budget, Settlement, StateBackend, Window, open_state
from crossroads.state.base import SETTLED_TTL_S, GuardedState
from tests.support.redis import REDIS_URL, redis_or_skip


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def state(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateBackend]:
    if request.param == "redis":
        redis_or_skip()
        backend = open_state(REDIS_URL, timeout_s=2.0)
    elif request.param == "sqlite":
        backend = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    else:
        backend = open_state("memory")
    yield backend
    if request.param == "redis":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL)
        keys = [k async for k in client.scan_iter(f"{PREFIX}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    await backend.aclose()


PREFIX = f"crossroads-test-{os.getpid()}-{time.time_ns()}:"


def key(name: str) -> str:
    return PREFIX + name


async def test_a_window_counts_up_to_its_limit_and_refuses_without_counting(
    state: StateBackend,
) -> None:
    now = time.time()
    w = Window(key("w"), 1, 3, 60)
    used = []
    for _ in range(3):
        result = await state.admit([w], [], [], "h", now + 60, now)
        assert result.refused is None
        used.append(result.window_used[0])
    assert used == [1, 2, 3]
    refused = await state.admit([w], [], [], "h", now + 60, now)
    assert (refused.refused, refused.window, refused.window_used) == ("window", 0, [3])
    # A heavier cost that does not fit is refused too; the count stays where it was.
    tokens = Window(key("t"), 50, 100, 60)
    assert (await state.admit([tokens], [], [], "h", now + 60, now)).window_used == [50]
    assert (await state.admit([tokens], [], [], "h", now + 60, now)).window_used == [100]
    assert (await state.admit([tokens], [], [], "h", now + 60, now)).refused == "window"


async def test_admission_is_all_or_nothing(state: StateBackend) -> None:
    now = time.time()
    full = Window(key("full"), 1, 1, 60)
    free = Window(key("free"), 1, 10, 60)
    budget = Budget(key("b"), 100, 3600)
    assert (await state.admit([full], [], [], "h0", now + 60, now)).refused is None
    refused = await state.admit([free, full], [budget], [10], "h1", now + 60, now)
    assert (refused.refused, refused.window) == ("window", 1)
    # Nothing of the refused request was counted: the free window and the budget are untouched.
    assert (await state.admit([free], [], [], "h2", now + 60, now)).window_used == [1]
    assert await state.budget_used([budget.key], now) == [0]
    # A budget that refuses leaves the windows uncounted.
    over = await state.admit([free], [budget], [101], "h3", now + 60, now)
    assert over.refused == "budget" and over.budget_used == [0]
    assert (await state.admit([free], [], [], "h4", now + 60, now)).window_used == [2]


async def test_a_hold_counts_until_it_is_settled_with_the_actual_cost(
    state: StateBackend,
) -> None:
    now = time.time()
    b = Budget(key("b"), 1000, 3600)
    first = await state.admit([], [b], [400], "r1", now + 60, now)
    assert (first.refused, first.choice, first.budget_used) == (None, 0, [0])
    second = await state.admit([], [b], [400], "r2", now + 60, now)
    assert second.budget_used == [400]
    third = await state.admit([], [b], [400], "r3", now + 60, now)
    assert third.refused == "budget" and third.budget_used == [800]
    await state.settle([Settlement([b], "r1", 150)], now)
    assert await state.budget_used([b.key], now) == [550]  # 150 spent + 400 held
    await state.settle([Settlement([b], "r2", 0)], now)
    assert await state.budget_used([b.key], now) == [150]
    # Settling a hold never taken (a fail-open admission) only charges.
    await state.settle([Settlement([b], "never-held", 10)], now)
    assert await state.budget_used([b.key], now) == [160]


async def test_a_settlement_sent_again_is_applied_once(state: StateBackend) -> None:
    """A batch whose write timed out after the backend applied it is sent again: its
    budgets and windows must not be charged twice."""
    now = time.time()
    b = Budget(key("b"), 1000, 3600)
    w = Window(key("tpm"), 100, 1000, 60)
    await state.admit([w], [b], [400], "r1", now + 60, now)
    once = Settlement([b], "r1", 150, [(w.key, -60)], marker=key("settled:r1"))
    await state.settle([once], now)
    await state.settle([once, once], now + 1)
    assert await state.budget_used([b.key], now + 1) == [150]
    assert (await state.admit([w], [], [], "r2", now + 60, now + 1)).window_used == [140]
    # Another request's settlement in the same batch is applied.
    other = Settlement([b], "r3", 5, marker=key("settled:r3"))
    await state.settle([once, other], now + 2)
    assert await state.budget_used([b.key], now + 2) == [155]
    # The marker is forgotten after SETTLED_TTL_S.
    await state.settle([once], now + SETTLED_TTL_S + 10)
    assert await state.budget_used([b.key], now + SETTLED_TTL_S + 10) == [305]


async def test_the_first_candidate_cost_that_fits_every_budget_is_held(
    state: StateBackend,
) -> None:
    now = time.time()
    key_budget, team_budget = Budget(key("k"), 1000, None), Budget(key("t"), 300, None)
    result = await state.admit([], [key_budget, team_budget], [500, 250, 100], "r", now + 60, now)
    assert (result.refused, result.choice) == (None, 1)
    assert await state.budget_used([key_budget.key, team_budget.key], now) == [250, 250]
    none_fit = await state.admit([], [key_budget, team_budget], [500, 100], "r2", now + 60, now)
    assert none_fit.refused == "budget" and none_fit.budget_used == [250, 250]


async def test_an_expired_hold_is_released(state: StateBackend) -> None:
    now = time.time()
    b = Budget(key("b"), 100, 3600)
    await state.admit([], [b], [100], "lost", now + 5, now)
    assert (await state.admit([], [b], [1], "x", now + 5, now + 1)).refused == "budget"
    later = await state.admit([], [b], [100], "next", now + 100, now + 6)
    assert later.refused is None and later.budget_used == [0]


async def test_settling_adjusts_token_windows_that_still_exist(state: StateBackend) -> None:
    now = time.time()
    w = Window(key("tpm"), 100, 1000, 60)
    await state.admit([w], [], [], "r", now + 60, now)
    await state.settle([Settlement([], "r", 0, [(w.key, -60), (key("gone"), 5)])], now)
    assert (await state.admit([w], [], [], "r2", now + 60, now)).window_used == [140]
    assert (
        await state.admit([Window(key("gone"), 1, 10, 60)], [], [], "r3", now + 60, now)
    ).window_used == [1]


async def test_concurrent_admissions_never_pass_a_budget(state: StateBackend) -> None:
    now = time.time()
    b = Budget(key("race"), 1000, None)
    results = await asyncio.gather(
        *(state.admit([], [b], [30], f"r{i}", now + 60, now) for i in range(100))
    )
    admitted = [r for r in results if r.refused is None]
    assert len(admitted) == 33  # 33 * 30 = 990 <= 1000 < 34 * 30
    assert await state.budget_used([b.key], now) == [990]


async def test_records_live_for_their_ttl(state: StateBackend) -> None:
    await state.put_record(key("breaker"), '{"state": "open"}', 0.3)
    assert await state.get_records([key("breaker"), key("none")]) == ['{"state": "open"}', None]
    await asyncio.sleep(0.4)
    assert await state.get_records([key("breaker")]) == [None]


async def test_counters_add_up(state: StateBackend) -> None:
    await state.add_counters({key("c1"): {"calls": 3, "failures": 1}, key("c2"): {"calls": 1}}, 60)
    await state.add_counters({key("c1"): {"calls": 2, "f:http_503": 1}}, 60)
    assert await state.read_counters([key("c1"), key("c2"), key("c3")]) == [
        {"calls": 5, "failures": 1, "f:http_503": 1},
        {"calls": 1},
        {},
    ]


async def test_the_guard_bounds_a_dead_backend_and_backs_off() -> None:
    class Dead(StateBackend):
        name = "dead"
        calls = 0

        async def budget_used(self, keys: object, now: float) -> list[int]:
            Dead.calls += 1
            await asyncio.sleep(10)
            return []

    guard = GuardedState(Dead(), timeout_s=0.05, retry_after_s=30)
    for _ in range(3):  # one slow answer fails its call only; three in a row back off
        assert guard.available
        with pytest.raises(StateUnavailableError, match="no answer within 50 ms"):
            await guard.call(lambda: guard.backend.budget_used([], 0))
    with pytest.raises(StateUnavailableError, match="next try in"):
        await guard.call(lambda: guard.backend.budget_used([], 0))
    assert Dead.calls == 3 and not guard.available
    assert guard.stats()["failures"] == 3
