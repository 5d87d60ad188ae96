"""Dispatcher bugs found by ``python -m bench.dispatch`` (bench/RESULTS.md, "Dispatch
machinery"), pinned as strict xfails until fixed."""

from __future__ import annotations

from collections import Counter

import pytest

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


@pytest.mark.xfail(
    strict=True,
    reason=(
        "least_loaded takes the exact minimum for <= 3 endpoints and min() breaks ties by "
        "list order, so whenever the endpoints are equally loaded (idle, or each with the "
        "same in-flight count) the first one gets the request: at 200 streams/s the bench "
        "saw A/B/C = 79/20/1 %. Fix: break ties at random (e.g. sample two distinct "
        "endpoints for any n >= 2, as power of two choices does, or min over a shuffled copy)."
    ),
)
def test_least_loaded_spreads_requests_over_equally_loaded_endpoints() -> None:
    eps = _endpoints(3)
    # Requests that each finish before the next starts: every choice sees three idle endpoints.
    picks = Counter(choose("least_loaded", eps).key for _ in range(300))
    assert all(picks[e.key] >= 60 for e in eps), picks
