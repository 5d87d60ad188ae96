"""Settings of the gateway process: where it listens, client keys, the trace store."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    field_validator,
)

from crossroads.config.base import _Strict
from crossroads.config.tenants import PolicyConfig


class ApiKey(_Strict):
    """A client API key, read from an environment variable; ``name`` is what traces show."""

    name: str
    key_env: str
    team: str | None = None
    policy: PolicyConfig = PolicyConfig()


class ServerConfig(_Strict):
    """Where and how the gateway listens."""

    host: str = "127.0.0.1"
    port: int = Field(8400, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    max_head_bytes: int = Field(
        64 * 1024, ge=1024, le=1024 * 1024, description="request line and headers; larger: 431"
    )
    max_connections: int = Field(
        16_384, ge=1, description="connections one worker holds; one more is answered 503"
    )
    header_timeout_s: float = Field(
        10, gt=0, le=3600, description="a request's head must arrive within this; else 408"
    )
    body_timeout_s: float = Field(
        60, gt=0, le=3600, description="a request's body must arrive within this after its head"
    )
    idle_timeout_s: float = Field(
        75, gt=0, le=3600, description="a keep-alive connection with no request is closed after"
    )
    write_timeout_s: float = Field(
        30,
        gt=0,
        le=3600,
        description="a client that reads none of a full write buffer for this long is dropped",
    )
    shutdown_timeout_s: float = Field(
        30, ge=0, le=3600, description="on SIGTERM, open requests get this long, then are cut"
    )
    http: Literal["crossroads", "uvicorn"] = Field(
        "crossroads",
        description="HTTP/1.1 protocol: crossroads' lean httptools protocol, or uvicorn's own",
    )
    api_keys: list[ApiKey] = []
    admin_key_env: str | None = Field(
        None,
        description="environment variable holding the admin key that guards the admin API "
        "and the dashboard; unset: they answer 403",
    )
    expected_output_tokens: int = Field(
        256, ge=1, description="output tokens assumed for cost estimates when max_tokens is unset"
    )


class StoreConfig(_Strict):
    """Where traces go: ``sqlite`` (default file in the data dir), ``sqlite:///path``,
    ``postgresql://...``, ``memory`` or ``none``."""

    traces: str = "sqlite"
    keys: str | None = Field(
        None,
        description="where virtual API keys live: sqlite (keys.db in the data dir), "
        "sqlite:///path or postgresql://...; set, every request needs a key",
    )
    flush_interval_ms: int = Field(200, ge=1, le=60_000)
    batch_size: int = Field(500, ge=1, le=100_000)
    retention_days: float | None = Field(
        30, gt=0, description="traces older than this are deleted (hourly); null keeps all"
    )
    max_queue: int = Field(
        100_000,
        ge=1,
        le=100_000_000,
        description="traces waiting for the writer at most; beyond, new ones are dropped",
    )
    prompts: bool = Field(
        False,
        description="keep each request's last user message (PII masked, bounded) in its "
        "trace, so that crossroads dataset export can give prompt text to routers",
    )
    drain_timeout_s: float = Field(
        10,
        ge=0,
        le=3600,
        description="at shutdown, queued traces are written for at most this long; "
        "the rest are dropped (and counted)",
    )

    @field_validator("traces")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value in ("sqlite", "memory", "none") or value.startswith("sqlite:///"):
            return value
        from crossroads.registry import STORES
        from crossroads.store import base  # noqa: F401  (registers the built-in stores)

        scheme = value.partition(":")[0]
        if scheme not in ("sqlite", "memory", "none") and STORES.find(scheme) is not None:
            return value  # postgresql://, or a plugin's store
        raise ValueError(
            f"unknown trace store {value!r}: use 'sqlite', 'sqlite:///path/to/traces.db', "
            "'postgresql://user@host/database', 'memory' or 'none'"
        )

    @field_validator("keys")
    @classmethod
    def _known_key_store(cls, value: str | None) -> str | None:
        if (
            value is None
            or value == "sqlite"
            or value.startswith(("sqlite:///", "postgresql://", "postgres://"))
        ):
            return value
        raise ValueError(
            f"unknown key store {value!r}: use 'sqlite', 'sqlite:///path/to/keys.db' or "
            "'postgresql://user@host/database'"
        )
