"""Breakers shared by two workers (two dispatchers in one process) through one state
backend: an opening is published and applied, and the fleet's error rate opens a breaker no
worker would have opened alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from crossroads.config import parse_config
from crossroads.dispatch.breaker import CircuitBreaker
from crossroads.dispatch.dispatcher import Dispatcher
from crossroads.dispatch.endpoints import EndpointState
from crossroads.dispatch.fleet import Fleet
from crossroads.gateway.app import build_upstream
from crossroads.state import GuardedState, open_state

CONFIG = {
    "upstreams": [{"name": "m", "kind": "mock"}],
    "models": [{"name": "small", "upstream": "m"}],
    "dispatch": {
        "breaker": {"consecutive_failures": 4, "error_rate": 0.5, "min_requests": 6, "open_s": 30}
    },
}


def worker() -> Dispatcher:
    cfg = parse_config(CONFIG)
    return Dispatcher(cfg, {u.name: build_upstream(u) for u in cfg.upstreams}).prepare()


def endpoint(d: Dispatcher) -> EndpointState:
    (e,) = d.deployments_.values()
    return e


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.01)


async def fleet_of_two() -> tuple[Fleet, Fleet]:
    state = GuardedState(open_state("memory"), 1.0, 1.0)  # shared, as Redis would be
    one, two = (Fleet(worker(), state, "t:", 0.02) for _ in range(2))
    one.start()
    two.start()
    return one, two


async def test_a_breaker_opened_on_one_worker_opens_on_the_other() -> None:
    one, two = await fleet_of_two()
    first, second = endpoint(one.dispatcher), endpoint(two.dispatcher)
    for _ in range(4):
        first.failed += 1
        first.breaker.failure("http_503")
    assert first.breaker.state == "open"
    await until(lambda: second.breaker.state == "open")
    assert second.breaker.reason == "fleet: 4 consecutive failures: http_503"
    assert 29 < second.breaker.retry_after() <= 30  # until the same moment as the first
    assert first.breaker.reason == "4 consecutive failures: http_503"  # not re-applied
    await one.aclose()
    await two.aclose()


async def test_the_fleets_error_rate_opens_what_no_worker_saw_alone() -> None:
    one, two = await fleet_of_two()
    first, second = endpoint(one.dispatcher), endpoint(two.dispatcher)
    for e in (first, second):  # each: 1 success, 2 failures, below min_requests alone
        e.served += 1
        e.breaker.success()
        for _ in range(2):
            e.failed += 1
            e.breaker.failure("timeout")
    assert first.breaker.state == second.breaker.state == "closed"
    await until(lambda: first.breaker.state == second.breaker.state == "open")
    assert {first.breaker.reason, second.breaker.reason} <= {
        "fleet: 4/6 calls failed in 30 s: timeout"
    }
    await one.aclose()
    await two.aclose()


async def test_a_dead_backend_leaves_breakers_per_worker() -> None:
    from crossroads.state.base import StateBackend

    class Dead(StateBackend):
        name = "dead"

    fleet = Fleet(worker(), GuardedState(Dead(), 0.1, 0.01), "t:", 0.02)
    fleet.start()
    e = endpoint(fleet.dispatcher)
    for _ in range(4):
        e.breaker.failure("connect")
    await asyncio.sleep(0.1)
    assert e.breaker.state == "open" and fleet.syncs == 0
    assert fleet.state.failures >= 1
    await fleet.aclose()


def test_open_for_keeps_the_fleets_moment() -> None:
    clock = [100.0]
    from crossroads.config import BreakerConfig

    b = CircuitBreaker(BreakerConfig(open_s=10), lambda: clock[0])
    b.open_for(4, "fleet: x")
    assert b.state == "open" and b.retry_after() == 4
    clock[0] += 4
    assert b.acquire() and b.state == "half_open"
