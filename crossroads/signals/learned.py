"""Learned signals: small heads over the one MiniLM embedding of a request.

Every learned signal (``domain``, ``complexity``, ``jailbreak``, ``ood``) reads the same
vector: :func:`request_vector` lets concurrent signals of one request share a single
encoder call (the first asks the shared micro-batcher, the others wait for its answer), so
four learned signals cost one embedding. Heads load at ``prepare``, never per request.

By default they read the last user message (``scope: last_user``) and, when it is longer
than the encoder's 256 tokens, its first 64 and last 192 tokens (``window: head_tail``);
``window: head`` or ``tail`` read only one end.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from crossroads.config.signals import _SignalBase
from crossroads.embeddings.shared import leave_vector, request_vector
from crossroads.signals.base import Signal
from crossroads.signals.heads import Head, resolve_head
from crossroads.types import EmbeddingWindow as Window
from crossroads.types import RoutingRequest, SignalResult

if TYPE_CHECKING:
    import numpy as np


class LearnedSignalConfig(_SignalBase):
    """Keys every learned signal has: its own ``model`` (a head trained with
    ``crossroads signals train``; default the built-in one)."""

    model: str | None = None
    timeout_ms: float = Field(200.0, gt=0)
    scope: Literal["all", "last_user"] = "last_user"
    window: Window = "head_tail"


def _encoder(window: Window = "head_tail") -> Any:
    from crossroads.embeddings.shared import shared_embedder

    return shared_embedder(window)


class LearnedSignal(Signal):
    """A signal computed from the request's embedding by a trained head.

    Subclasses set ``head_name`` (the built-in head) and implement :meth:`judge`.
    """

    is_async = True
    head_name: ClassVar[str] = ""

    def prepare(self) -> None:
        self.head: Head = resolve_head(self.head_name, self.config.model)
        encoder = _encoder(self.config.window)
        if self.head.dimension != encoder.dimension:
            from crossroads.exceptions import ConfigError

            raise ConfigError(
                [
                    (
                        "signals",
                        f"the head of {self.name} reads {self.head.dimension}-wide embeddings, "
                        f"the encoder gives {encoder.dimension}: retrain it on this encoder",
                    )
                ]
            )

    async def evaluate(self, requests: list[RoutingRequest]) -> list[SignalResult]:
        texts = [self.text_of(r) for r in requests]
        window = self.config.window
        vectors = await asyncio.gather(*(request_vector(t, window) for t in texts))
        for request, vector, text in zip(requests, vectors, texts, strict=True):
            leave_vector(request, text, window, vector)
        return [self.judge(v, t) for v, t in zip(vectors, texts, strict=True)]

    def judge(self, vector: np.ndarray, text: str) -> SignalResult:
        """The signal's result for one embedded text."""
        raise NotImplementedError
