"""Endpoint choice among a model's available endpoints.

- ``least_loaded``: power of two choices on in-flight requests per unit of weight.
- ``latency``: lowest expected wait, EWMA time-to-first-byte × (in-flight + 1); endpoints
  without samples are tried first.
- ``prefix_affinity`` (DualMap): two hash candidates from the prompt prefix, the less loaded
  of the two, so repeated prefixes hit warm KV caches; when that endpoint's TTFT EWMA breaks
  the SLO, pure least-loaded over all endpoints.
- ``weighted``: random by weight.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence

from crossroads.dispatch.endpoints import EndpointState

_random = random.Random()


def _load(e: EndpointState) -> float:
    return (e.in_flight + 1) / e.weight


def least_loaded(endpoints: Sequence[EndpointState]) -> EndpointState:
    """Power of two choices (exact minimum when there are at most three); ties are broken at
    random, so idle endpoints share the traffic instead of the first taking it all."""
    if len(endpoints) == 1:
        return endpoints[0]
    if len(endpoints) <= 3:
        best = min(_load(e) for e in endpoints)
        ties = [e for e in endpoints if _load(e) == best]
        return ties[0] if len(ties) == 1 else _random.choice(ties)
    a, b = _random.sample(list(endpoints), 2)
    return a if _load(a) <= _load(b) else b


def lowest_latency(endpoints: Sequence[EndpointState]) -> EndpointState:
    """The endpoint with the lowest expected time to first byte under its current load."""
    unexplored = [e for e in endpoints if e.ttft_ms is None]
    if unexplored:
        return least_loaded(unexplored)
    return min(endpoints, key=lambda e: e.ttft_ms * (e.in_flight + 1) / e.weight)  # type: ignore[operator]


def prefix_affinity(
    endpoints: Sequence[EndpointState], prefix: str, ttft_slo_ms: float
) -> EndpointState:
    """DualMap: of the prefix's two hash candidates the less loaded, unless it breaks the SLO."""
    if len(endpoints) == 1:
        return endpoints[0]
    data = prefix.encode("utf-8", "surrogatepass")
    n = len(endpoints)
    i = zlib.crc32(data) % n
    j = zlib.adler32(data) % n
    if j == i:
        j = (i + 1) % n
    chosen = min((endpoints[i], endpoints[j]), key=_load)
    if chosen.ttft_ms is not None and chosen.ttft_ms > ttft_slo_ms:
        return least_loaded(endpoints)
    return chosen


def weighted(endpoints: Sequence[EndpointState]) -> EndpointState:
    """Random, proportional to weight."""
    return _random.choices(list(endpoints), weights=[e.weight for e in endpoints])[0]


def choose(
    policy: str, endpoints: Sequence[EndpointState], prefix: str = "", ttft_slo_ms: float = 2000.0
) -> EndpointState:
    """The endpoint ``policy`` picks among ``endpoints`` (not empty)."""
    if policy == "latency":
        return lowest_latency(endpoints)
    if policy == "prefix_affinity":
        return prefix_affinity(endpoints, prefix, ttft_slo_ms)
    if policy == "weighted":
        return weighted(endpoints)
    return least_loaded(endpoints)
