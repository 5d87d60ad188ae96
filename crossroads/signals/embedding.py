"""Embedding signal: cosine similarity of the prompt to exemplar texts (MiniLM, ONNX).

The exemplars are embedded once at start-up; at request time the prompt is embedded through
the shared :class:`~crossroads.embeddings.batcher.MicroBatcher`, so concurrent requests share
encoder calls and the event loop never waits on the model; the learned signals of the same
request reuse that embedding (:func:`~crossroads.embeddings.shared.request_vector`).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from crossroads.embeddings.shared import (
    leave_vector,
    request_vector,
    shared_batcher,
    shared_embedder,
)
from crossroads.signals.base import SIGNALS, Signal
from crossroads.types import RoutingRequest, SignalResult, ValueSpec

# Where plans and older code find the process's encoder.
__all__ = ["EmbeddingSignal", "shared_batcher", "shared_embedder"]


@SIGNALS.register("embedding")
class EmbeddingSignal(Signal):
    """Matches when the prompt's best cosine similarity to an exemplar reaches ``threshold``."""

    kind = "embedding"
    is_async = True
    value_spec = ValueSpec("number", -1, 1)  # the best cosine similarity to an exemplar

    @classmethod
    def value_spec_for(cls, config: Any) -> ValueSpec:
        """It matches exactly when the similarity reaches ``threshold``."""
        return replace(cls.value_spec, matched_when=((">=", config.threshold),))

    def prepare(self) -> None:
        self._exemplars = shared_embedder(self.config.window).encode(list(self.config.exemplars))

    async def evaluate(self, requests: list[RoutingRequest]) -> list[SignalResult]:
        window = self.config.window
        texts = [self.text_of(r) for r in requests]
        vectors = await asyncio.gather(*(request_vector(t, window) for t in texts))
        out = []
        for request, vector, text in zip(requests, vectors, texts, strict=True):
            leave_vector(request, text, window, vector)
            similarity = self._exemplars @ vector
            best = int(similarity.argmax())
            score = float(similarity[best])
            out.append(
                SignalResult(
                    self.name,
                    score >= self.config.threshold,
                    round(score, 4),
                    detail=self.config.exemplars[best],
                )
            )
        return out
