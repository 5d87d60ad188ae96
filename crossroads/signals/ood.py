"""Out-of-distribution guard (after Guarded Query Routing): no known route fits the prompt.

A prompt is flagged when it is far from every reference prompt **and** outside the domain
classifier's confident region. The references are ``exemplars`` (list your decisions'
examples) or, without them, the training prompts the domain head keeps (1,024 embeddings,
those of in-scope labels count: a nearest-neighbour distance). The domain region is
confident when the top label is one of ``labels`` (any but ``other`` when empty) with probability at least ``min_confidence``.
A policy routes flagged prompts to a default model, or refuses them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from crossroads.registry import SIGNALS
from crossroads.signals.heads import Head
from crossroads.signals.learned import LearnedSignal, LearnedSignalConfig, _encoder
from crossroads.types import SignalResult, ValueSpec

if TYPE_CHECKING:
    import numpy as np


EXEMPLAR_SIMILARITY = 0.3  # default distance to ``exemplars`` (like embedding thresholds)
REFERENCE_SIMILARITY = 0.35  # used when a head stores no calibrated one


def ood_flags(
    head: Head,
    vectors: np.ndarray,
    references: np.ndarray,
    in_scope: np.ndarray,
    min_similarity: float,
    min_confidence: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: out of distribution?, best similarity to ``references``, domain scores."""
    similarity = (vectors @ references.T).max(axis=1)
    scores = head.scores(vectors)
    best = scores.argmax(axis=1)
    confident = in_scope[best] & (scores.max(axis=1) >= min_confidence)
    return (similarity < min_similarity) & ~confident, similarity, scores


class OodSignalConfig(LearnedSignalConfig):
    """Matches (value true) when the prompt is out of distribution; ``model`` names the
    domain head to use (default the built-in one)."""

    kind: Literal["ood"]
    exemplars: list[str] = []
    labels: list[str] = []
    min_similarity: float | None = Field(None, ge=-1, le=1)
    min_confidence: float = Field(0.5, ge=0, le=1)


@SIGNALS.register("ood")
class OodSignal(LearnedSignal):
    """True when the prompt fits no known route (value); similarity and domain (detail)."""

    kind = "ood"
    head_name = "domain"
    config_class = OodSignalConfig
    value_spec = ValueSpec("flag", matched_when=(("==", True),))  # out of distribution or not

    def prepare(self) -> None:
        super().prepare()
        import numpy as np

        head = self.head
        in_scope = self.config.labels or [x for x in head.labels if x != "other"]
        unknown = sorted(set(in_scope) - set(head.labels))
        if unknown:
            from crossroads.exceptions import ConfigError

            raise ConfigError(
                [
                    (
                        f"signals[ood:{self.config.name}].labels",
                        f"the domain head has no label {', '.join(map(repr, unknown))}; "
                        f"it knows {', '.join(head.labels)}",
                    )
                ]
            )
        self._in_scope = np.array([x in in_scope for x in head.labels])
        if self.config.exemplars:
            self._references = _encoder(self.config.window).encode(list(self.config.exemplars))
            default = EXEMPLAR_SIMILARITY
        else:
            if "references" not in head.arrays:
                from crossroads.exceptions import ConfigError

                raise ConfigError(
                    [
                        (
                            f"signals[ood:{self.config.name}]",
                            "the domain head keeps no reference prompts: give 'exemplars', or "
                            "retrain the head with 'crossroads signals train domain'",
                        )
                    ]
                )
            keep = np.isin(head.arrays["reference_labels"], in_scope)
            self._references = head.arrays["references"][keep].astype(np.float32)
            default = head.meta.get("ood_min_similarity", REFERENCE_SIMILARITY)
        self._min_similarity = (
            self.config.min_similarity if self.config.min_similarity is not None else default
        )

    def judge(self, vector: np.ndarray, text: str) -> SignalResult:
        flags, similarity, scores = ood_flags(
            self.head,
            vector[None, :],
            self._references,
            self._in_scope,
            self._min_similarity,
            self.config.min_confidence,
        )
        out, best = bool(flags[0]), int(scores[0].argmax())
        detail = (
            f"similarity={similarity[0]:.2f} domain={self.head.labels[best]}@{scores[0, best]:.2f}"
        )
        return SignalResult(self.name, out, out, detail=detail)
