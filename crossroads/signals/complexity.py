"""Complexity signal: the probability that a small model fails on the prompt.

The built-in head is a logistic regression over the embedding, fitted on the routing
datasets' per-prompt correctness of small models (seven 7-8B open models on RouterDC,
Mixtral on RouteLLM's MMLU/GSM8K/MT-Bench, Claude 3 Haiku on RouterArena): its value is in [0, 1], and its band is ``easy`` (below
``medium_at``), ``medium`` or ``hard`` (from ``hard_at``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from crossroads.registry import SIGNALS
from crossroads.signals.learned import LearnedSignal, LearnedSignalConfig
from crossroads.types import SignalResult, ValueSpec

if TYPE_CHECKING:
    import numpy as np

Band = Literal["easy", "medium", "hard"]


class ComplexitySignalConfig(LearnedSignalConfig):
    """Matches when the prompt's band is one of ``bands``."""

    kind: Literal["complexity"]
    medium_at: float = Field(0.35, ge=0, le=1)
    hard_at: float = Field(0.6, ge=0, le=1)
    bands: list[Band] = Field(["hard"], min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> ComplexitySignalConfig:
        if self.hard_at < self.medium_at:
            raise ValueError(
                f"hard_at ({self.hard_at}) must be at least medium_at ({self.medium_at})"
            )
        return self


def band_of(p: float, medium_at: float, hard_at: float) -> Band:
    """The band of a failure probability."""
    return "hard" if p >= hard_at else "medium" if p >= medium_at else "easy"


@SIGNALS.register("complexity")
class ComplexitySignal(LearnedSignal):
    """Failure probability of a small model (value) and its band (detail)."""

    kind = "complexity"
    head_name = "complexity"
    config_class = ComplexitySignalConfig
    value_spec = ValueSpec("number", 0, 1)  # the probability that a small model fails

    @classmethod
    def value_spec_for(cls, config: ComplexitySignalConfig) -> ValueSpec:
        """It matches exactly when the value is in the interval its ``bands`` make (when they
        make one: not ``[easy, hard]``)."""
        spec = ValueSpec("number", 0, 1)
        bands = set(config.bands)
        if bands == {"easy", "hard"}:
            return spec
        when: tuple[tuple[str, Any], ...] = ()
        if "easy" not in bands:
            when += ((">=", config.medium_at if "medium" in bands else config.hard_at),)
        if "hard" not in bands:
            when += (("<", config.hard_at if "medium" in bands else config.medium_at),)
        return replace(spec, matched_when=when)

    def judge(self, vector: np.ndarray, text: str) -> SignalResult:
        p = float(self.head.scores(vector[None, :])[0])
        band = band_of(p, self.config.medium_at, self.config.hard_at)
        return SignalResult(self.name, band in self.config.bands, round(p, 4), detail=band)
