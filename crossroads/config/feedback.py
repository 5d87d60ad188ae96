"""How the gateway takes feedback on its answers (``POST /v1/crossroads/feedback``)."""

from __future__ import annotations

from pydantic import Field, field_validator

from crossroads.config.base import _Strict


class FeedbackConfig(_Strict):
    """Rewards for answered requests. A reward is a number in [0, 1], ``"up"``/``"down"``
    (1 and 0), or a named label mapped here, e.g. ``labels: {solved: 1.0, partial: 0.5}``."""

    labels: dict[str, float] = Field(
        default_factory=dict, description="named rewards a client may send instead of a number"
    )
    max_body_bytes: int = Field(
        64 * 1024, ge=256, le=4 * 1024 * 1024, description="a feedback body larger: 413"
    )

    @field_validator("labels")
    @classmethod
    def _in_unit_interval(cls, value: dict[str, float]) -> dict[str, float]:
        for name, reward in value.items():
            if not 0.0 <= reward <= 1.0:
                raise ValueError(f"label {name!r} maps to {reward}: a reward is in [0, 1]")
            if name in ("up", "down"):
                raise ValueError(f"{name!r} is built in (up = 1, down = 0): pick another name")
        return value
