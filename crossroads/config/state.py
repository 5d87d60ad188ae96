"""Where shared state lives (budgets, rate windows, breakers) and what happens when it fails."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from crossroads.config.base import _Strict

FailurePolicy = Literal["open", "closed"]


class StateFailurePolicy(_Strict):
    """Per feature, what a request gets while the state backend is unreachable: ``open``
    serves it unchecked, ``closed`` refuses it (503 ``limits_unavailable``)."""

    budgets: FailurePolicy = "closed"
    rate_limits: FailurePolicy = "open"


class StateConfig(_Strict):
    """The state backend: ``memory`` (one process), ``sqlite`` (a file, one machine) or
    ``redis://host:port/db`` (shared by every replica)."""

    backend: str = "sqlite"
    key_prefix: str = Field("crossroads:", max_length=200)
    timeout_ms: float = Field(
        500, gt=0, le=60_000, description="one state operation at most; slower counts as failed"
    )
    retry_after_s: float = Field(
        2,
        ge=0,
        le=3600,
        description="after an error (or 3 timeouts in a row), the backend is not asked "
        "again for this long (requests get the failure policy at once)",
    )
    on_error: StateFailurePolicy = StateFailurePolicy()
    hold_ttl_s: float = Field(
        900, gt=0, description="a reservation never settled (a crashed replica) is released after"
    )
    share_dispatch: bool = Field(
        True, description="share circuit breakers and endpoint health through the backend"
    )
    sync_interval_s: float = Field(
        1, gt=0, le=60, description="how often breakers and endpoint health are synchronised"
    )
    max_pending_settlements: int = Field(
        100_000, ge=1, description="settlements waiting to be written at most; beyond, dropped"
    )

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from crossroads.registry import STATES

        scheme = value.partition(":")[0]
        if value in ("memory", "sqlite") or value.startswith("sqlite:///"):
            return value
        if scheme in ("redis", "rediss", "unix") and value.startswith(f"{scheme}://"):
            return value
        if scheme not in ("memory", "sqlite") and STATES.find(scheme) is not None:
            return value
        raise ValueError(
            f"unknown state backend {value!r}: use 'memory', 'sqlite', "
            "'sqlite:///path/to/state.db' or 'redis://host:6379/0'"
        )
