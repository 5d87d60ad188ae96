"""Settings of what the gateway reports about itself: Prometheus metrics, OpenTelemetry spans."""

from __future__ import annotations

from pydantic import Field, field_validator

from crossroads.config.base import _Strict

# First path segments the gateway answers itself (with or without /v1).
GATEWAY_ROUTES = frozenset(
    {"chat", "completions", "messages", "responses", "embeddings", "models", "health", "ready"}
    | {"openapi.json", "v1"}
)


class MetricsConfig(_Strict):
    """``GET /metrics`` in Prometheus' text format, aggregated over every worker."""

    enabled: bool = True
    path: str = Field("/metrics", description="where the metrics are served")
    require_admin_key: bool = Field(
        False, description="answer only requests carrying the admin key (server.admin_key_env)"
    )
    by_key: bool = Field(
        True, description="label tokens and cost by API key and team (one series per key)"
    )
    flush_interval_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="with several workers, how often each publishes its counts to the others",
    )

    @field_validator("path")
    @classmethod
    def _own_path(cls, value: str) -> str:
        if not value.startswith("/") or value == "/" or value.split("/")[1] in GATEWAY_ROUTES:
            raise ValueError(
                f"metrics.path {value!r} must start with '/' and not shadow a gateway route "
                "(/v1/..., /health, /ready, /models, ...): e.g. /metrics"
            )
        return value


class OpenTelemetryConfig(_Strict):
    """Spans of every request, exported by OTLP over HTTP (needs the ``otel`` extra)."""

    enabled: bool = False
    endpoint: str | None = Field(
        None,
        description="OTLP/HTTP traces URL; unset: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "
        "OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4318/v1/traces",
    )
    service_name: str = "crossroads"
    sample_ratio: float = Field(
        1.0, ge=0, le=1, description="share of new traces exported; a caller's traceparent decides"
    )
    propagate: bool = Field(True, description="send W3C traceparent to upstreams")
    max_queue: int = Field(
        10_000, ge=1, le=10_000_000, description="requests waiting to be exported; beyond: dropped"
    )
    timeout_s: float = Field(10, gt=0, le=300, description="one export call at most")
