"""Settings of the dashboard (``/ui``) and of the admin API that feeds it."""

from __future__ import annotations

from pydantic import Field

from crossroads.config.base import _Strict


class UiConfig(_Strict):
    """What the dashboard compares spend with, where it finds evaluation reports, and how
    much one of its queries may read."""

    reference_model: str | None = Field(
        None,
        description="savings are also measured against every request priced at this model",
    )
    eval_reports: str | None = Field(
        None,
        description="directory that `crossroads eval --out` writes to; the newest report "
        "under it is shown",
    )
    window_traces: int = Field(
        50_000,
        ge=100,
        le=5_000_000,
        description="aggregates read at most this many traces of a window (the newest)",
    )
    query_timeout_s: float = Field(
        10, gt=0, le=300, description="a dashboard query that runs longer is stopped (503)"
    )
