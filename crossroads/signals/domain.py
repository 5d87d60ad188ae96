"""Domain / task signal: what kind of request this is, from a classifier over the embedding.

The built-in head knows ``code``, ``math``, ``reasoning``, ``knowledge`` (factual questions
and explanations), ``writing``, ``chat``, ``translation``, ``extraction`` (summarise,
extract, classify given text) and ``other``; ``crossroads signals train domain --data``
trains one on your own labels. The value is the top label; the detail lists the scores.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from crossroads.registry import SIGNALS
from crossroads.signals.learned import LearnedSignal, LearnedSignalConfig
from crossroads.types import SignalResult, ValueSpec

if TYPE_CHECKING:
    import numpy as np


BUILTIN_LABELS = (
    "code",
    "math",
    "reasoning",
    "knowledge",
    "writing",
    "chat",
    "translation",
    "extraction",
    "other",
)  # the labels of the built-in head


class DomainSignalConfig(LearnedSignalConfig):
    """Matches when the top label is one of ``labels`` (any label but ``other`` when empty)
    with probability at least ``min_confidence``."""

    kind: Literal["domain"]
    labels: list[str] = []
    min_confidence: float = Field(0.0, ge=0, le=1)


def describe_scores(labels: list[str], scores: np.ndarray, top: int = 3) -> str:
    """``code=0.91 math=0.05 reasoning=0.02``: the ``top`` labels by score."""
    order = scores.argsort()[::-1][:top]
    return " ".join(f"{labels[i]}={scores[i]:.2f}" for i in order)


@SIGNALS.register("domain")
class DomainSignal(LearnedSignal):
    """The request's domain label (value), per-label scores (detail)."""

    kind = "domain"
    head_name = "domain"
    config_class = DomainSignalConfig
    value_spec = ValueSpec("label", labels=frozenset(BUILTIN_LABELS))  # the top label

    @classmethod
    def value_spec_for(cls, config: DomainSignalConfig) -> ValueSpec:
        """The built-in head's labels (any label for a head trained on your own); without
        ``min_confidence`` it matches exactly when the label is one of ``labels``."""
        spec = ValueSpec(
            "label", labels=frozenset(BUILTIN_LABELS) if config.model is None else None
        )
        wanted = config.labels or (
            [x for x in BUILTIN_LABELS if x != "other"] if config.model is None else None
        )
        if config.min_confidence > 0 or wanted is None:
            return spec
        return replace(spec, matched_when=(("in", frozenset(wanted)),))

    def prepare(self) -> None:
        super().prepare()
        unknown = sorted(set(self.config.labels) - set(self.head.labels))
        if unknown:
            from crossroads.exceptions import ConfigError

            raise ConfigError(
                [
                    (
                        f"signals[domain:{self.config.name}].labels",
                        f"the domain head has no label {', '.join(map(repr, unknown))}; "
                        f"it knows {', '.join(self.head.labels)}",
                    )
                ]
            )
        wanted = self.config.labels or [x for x in self.head.labels if x != "other"]
        self._wanted = frozenset(wanted)

    def judge(self, vector: np.ndarray, text: str) -> SignalResult:
        scores = self.head.scores(vector[None, :])[0]
        best = int(scores.argmax())
        label = self.head.labels[best]
        matched = label in self._wanted and float(scores[best]) >= self.config.min_confidence
        return SignalResult(
            self.name, matched, label, detail=describe_scores(self.head.labels, scores)
        )
