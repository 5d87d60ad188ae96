"""Live state of each endpoint (a model on an upstream): load, latency, circuit breaker."""

from __future__ import annotations

from dataclasses import dataclass, field

from crossroads.config import BreakerConfig, EndpointConfig
from crossroads.dispatch.base import Upstream
from crossroads.dispatch.breaker import CircuitBreaker

EWMA_ALPHA = 0.2


@dataclass(eq=False)
class EndpointState:
    """One endpoint: where it is, its weight and limit, and what we have seen of it."""

    model: str
    upstream: Upstream
    upstream_model: str
    weight: float
    max_concurrency: int | None
    breaker: CircuitBreaker
    in_flight: int = 0
    ttft_ms: float | None = None  # EWMA of time to first byte
    tpot_ms: float | None = None  # EWMA of time per output token (streams)
    total_timeout_s: float = float("inf")  # the upstream's own limit on one call
    deadlines: bool = False  # the upstream's complete() holds a deadline (``within=``)
    served: int = 0
    failed: int = 0
    key: str = field(init=False)

    def __post_init__(self) -> None:
        self.key = f"{self.upstream.name}/{self.upstream_model}"
        self.deadlines = getattr(self.upstream, "deadlines", False)

    @property
    def saturated(self) -> bool:
        """At its ``max_concurrency``."""
        return self.max_concurrency is not None and self.in_flight >= self.max_concurrency

    def observe_ttft(self, ms: float) -> None:
        """Fold one time-to-first-byte sample into the EWMA."""
        self.ttft_ms = (
            ms if self.ttft_ms is None else self.ttft_ms + EWMA_ALPHA * (ms - self.ttft_ms)
        )

    def observe_tpot(self, ms: float) -> None:
        """Fold one per-output-token time sample into the EWMA."""
        self.tpot_ms = (
            ms if self.tpot_ms is None else self.tpot_ms + EWMA_ALPHA * (ms - self.tpot_ms)
        )

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for ``/v1/crossroads/endpoints`` and traces."""
        return {
            "model": self.model,
            "endpoint": self.key,
            "state": self.breaker.state,
            "reason": self.breaker.reason or None,
            "in_flight": self.in_flight,
            "ttft_ms": self.ttft_ms,
            "tpot_ms": self.tpot_ms,
            "served": self.served,
            "failed": self.failed,
            "retry_after_s": round(self.breaker.retry_after(), 3),
        }


def build_endpoints(
    model: str,
    deployments: list[EndpointConfig],
    upstreams: dict[str, Upstream],
    breaker: BreakerConfig,
    known: dict[str, EndpointState],
) -> list[EndpointState]:
    """Endpoint states for one model's deployments. Models served by the same deployment
    (upstream and model id) share one state, so load and circuit are seen by both."""
    out = []
    for d in deployments:
        state = EndpointState(
            model=model,
            upstream=upstreams[d.upstream],
            upstream_model=d.upstream_model or model,
            weight=d.weight,
            max_concurrency=d.max_concurrency,
            breaker=CircuitBreaker(breaker),
        )
        timeouts = getattr(getattr(state.upstream, "config", None), "timeouts", None)
        if timeouts is not None:
            state.total_timeout_s = timeouts.total
        out.append(known.setdefault(state.key, state))
    return out
