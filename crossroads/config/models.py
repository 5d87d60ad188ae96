"""Models clients can ask for, their endpoints, prices and capabilities; and dispatch
settings (retries, circuit breakers, fallback)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    model_validator,
)

from crossroads.config.base import _Strict


class Price(_Strict):
    """USD per million tokens."""

    input: float = Field(0.0, ge=0)
    output: float = Field(0.0, ge=0)


class EndpointConfig(_Strict):
    """One deployment of a model: an upstream, the model id there, its share of traffic."""

    upstream: str
    upstream_model: str | None = None
    weight: float = Field(1.0, gt=0)
    max_concurrency: int | None = Field(None, ge=1)


class ModelConfig(_Strict):
    """A model the gateway can route to, served by one upstream or several endpoints."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.:/@-]+$")
    upstream: str | None = None
    upstream_model: str | None = None
    endpoints: list[EndpointConfig] = []
    balancing: Literal["least_loaded", "latency", "prefix_affinity", "weighted"] = "least_loaded"
    fallbacks: list[str] = []
    price: Price = Price()
    context_window: int = Field(8192, ge=1)
    max_output_tokens: int | None = Field(None, ge=1)
    capabilities: list[Literal["tools", "vision", "json"]] = ["tools", "json"]
    serves: list[Literal["chat", "completions", "embeddings"]] = ["chat", "completions"]
    description: str | None = None

    @model_validator(mode="after")
    def _one_way_to_reach_it(self) -> ModelConfig:
        if (self.upstream is None) == (not self.endpoints):
            raise ValueError(
                "give either 'upstream' (one endpoint) or 'endpoints' (a list), not both or neither"
            )
        return self

    @property
    def deployments(self) -> list[EndpointConfig]:
        """Every endpoint of the model (``upstream`` is shorthand for one)."""
        if self.endpoints:
            return [
                e
                if e.upstream_model
                else e.model_copy(update={"upstream_model": self.target_model})
                for e in self.endpoints
            ]
        assert self.upstream is not None
        return [EndpointConfig(upstream=self.upstream, upstream_model=self.target_model)]

    @property
    def target_model(self) -> str:
        """The model id sent to the upstream (unless an endpoint names its own)."""
        return self.upstream_model or self.name


class RetryConfig(_Strict):
    """Retries of retryable failures (connect errors, timeouts, 429, 5xx, broken bodies)."""

    max_attempts: int = Field(4, ge=1, le=20)
    backoff_base_ms: float = Field(50.0, ge=0)
    backoff_max_ms: float = Field(2000.0, ge=0)
    max_retry_after_s: float = Field(5.0, ge=0)
    budget_ratio: float = Field(
        0.2,
        ge=0,
        le=10,
        description="retries (every attempt after a request's first) may add at most this "
        "fraction of the requests of the last budget_window_s",
    )
    budget_min_per_s: float = Field(
        5.0, ge=0, description="retries per second always allowed, whatever the request rate"
    )
    budget_window_s: float = Field(10.0, gt=0, le=600, description="the retry budget's window")


class BreakerConfig(_Strict):
    """Per-endpoint circuit breaker."""

    consecutive_failures: int = Field(5, ge=1)
    error_rate: float = Field(0.5, gt=0, le=1)
    window_s: float = Field(30.0, gt=0)
    min_requests: int = Field(20, ge=1)
    open_s: float = Field(10.0, gt=0)
    half_open_probes: int = Field(1, ge=1)


class DispatchConfig(_Strict):
    """How a chosen model's request reaches an endpoint, and what happens when one fails."""

    retries: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()
    fallback_across_models: bool = True
    deadline_s: float = Field(600.0, gt=0)
    ttft_slo_ms: float = Field(2000.0, gt=0)
    prefix_chars: int = Field(1024, ge=16)
