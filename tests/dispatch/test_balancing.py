from __future__ import annotations

from collections import Counter

from crossroads.config import BreakerConfig
from crossroads.dispatch.balancing import choose, least_loaded, prefix_affinity
from crossroads.dispatch.breaker import CircuitBreaker
from crossroads.dispatch.endpoints import EndpointState


class _Up:
    def __init__(self, name: str) -> None:
        self.name = name


def endpoints(n: int, **kw) -> list[EndpointState]:
    return [
        EndpointState(
            "m", _Up(f"u{i}"), "m", kw.get("weight", 1.0), None, CircuitBreaker(BreakerConfig())
        )
        for i in range(n)
    ]  # type: ignore[arg-type]


def test_least_loaded_prefers_idle_and_respects_weight() -> None:
    eps = endpoints(3)
    eps[0].in_flight, eps[1].in_flight, eps[2].in_flight = 5, 1, 3
    assert least_loaded(eps) is eps[1]
    eps[0].weight = 10.0  # (5+1)/10 < (1+1)/1
    assert least_loaded(eps) is eps[0]


def test_power_of_two_choices_never_picks_the_most_loaded_of_many() -> None:
    eps = endpoints(8)
    for i, e in enumerate(eps):
        e.in_flight = i
    picks = Counter(least_loaded(eps).key for _ in range(2000))
    assert eps[-1].key not in picks
    assert picks[eps[0].key] > picks[eps[6].key]


def test_prefix_affinity_is_sticky_and_spreads_prefixes() -> None:
    eps = endpoints(4)
    first = prefix_affinity(eps, "You are a helpful assistant. Question 1", 2000)
    assert all(
        prefix_affinity(eps, "You are a helpful assistant. Question 1", 2000) is first
        for _ in range(20)
    )
    chosen = Counter(prefix_affinity(eps, f"prefix {i}", 2000).key for i in range(400))
    assert len(chosen) == 4


def test_prefix_affinity_picks_the_less_loaded_candidate_and_switches_on_slo() -> None:
    eps = endpoints(3)  # at most three: least-loaded is the exact minimum
    home = prefix_affinity(eps, "p", 2000)
    home.in_flight = 50
    second = prefix_affinity(eps, "p", 2000)
    assert second is not home  # the other hash candidate
    second.in_flight = 60
    second.ttft_ms = home.ttft_ms = 5000.0  # both over the SLO
    assert prefix_affinity(eps, "p", 2000).in_flight == 0  # pure least-loaded elsewhere


def test_latency_explores_then_prefers_fast() -> None:
    eps = endpoints(2)
    eps[0].ttft_ms = 100.0
    assert choose("latency", eps) is eps[1]  # no samples yet: try it
    eps[1].ttft_ms = 400.0
    assert choose("latency", eps) is eps[0]
    eps[0].in_flight = 5  # 100 x 6 > 400 x 1
    assert choose("latency", eps) is eps[1]


def test_ewma() -> None:
    (e,) = endpoints(1)
    e.observe_ttft(100)
    e.observe_ttft(200)
    assert e.ttft_ms == 120
