"""Dispatcher bugs found by ``python -m bench.dispatch`` (bench/RESULTS.md, "Dispatch
machinery"), kept as regression tests."""

from __future__ import annotations

from collections import Counter

from crossroads.config import BreakerConfig
from crossroads.dispatch.balancing import choose
from crossroads.dispatch.breaker import CircuitBreaker
from crossroads.dispatch.endpoints import EndpointState


class _Upstream:
    def __init__(self, name: str) -> None:
        self.name = name


def _endpoints(n: int) -> list[EndpointState]:
    return [
        EndpointState(
            "m",
            _Upstream(f"u{i}"),  # type: ignore[arg-type]
            "m",
            1.0,
            None,
            CircuitBreaker(BreakerConfig()),
        )
        for i in range(n)
    ]


def test_least_loaded_spreads_requests_over_equally_loaded_endpoints() -> None:
    eps = _endpoints(3)
    # Requests that each finish before the next starts: every choice sees three idle endpoints.
    picks = Counter(choose("least_loaded", eps).key for _ in range(300))
    assert all(picks[e.key] >= 60 for e in eps), picks
