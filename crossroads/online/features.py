"""The context vector of a request for a contextual bandit.

Layout (fixed by the config, so every replica agrees): a bias; ``log(1 + prompt_tokens)``
scaled to about [0, 1]; per listed signal its match, its numeric value (squashed past ±1)
and its string value hashed (crc32) into ``hash_slots`` one-hot slots; the prompt embedding
times a fixed Gaussian matrix seeded from the layout (``embedding_dims`` columns). A signal
that was not computed (a concurrent signal the rules did not need) contributes zeros.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np

from crossroads.config import OnlineFeatures
from crossroads.types import RoutingRequest

TOKENS_SCALE = math.log1p(32768)
PROJECTION_STD = 0.5  # each projected component of a unit vector has this spread


def squash(value: float) -> float:
    """``value`` within ±1, else ``±(1 + ln|value|)``: counts stay in a sane range."""
    if -1.0 <= value <= 1.0:
        return value
    return math.copysign(1.0 + math.log(abs(value)), value)


class FeatureMap:
    """Builds the context vector of a request (see the module docstring)."""

    def __init__(self, config: OnlineFeatures, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.signals = list(config.signals)
        self.per_signal = 2 + config.hash_slots
        self.embedding_at = 1 + int(config.prompt_tokens) + self.per_signal * len(self.signals)
        self.dimension = self.embedding_at + config.embedding_dims
        self._projection: np.ndarray | None = None

    def layout(self) -> str:
        """What the vector holds, as text (statistics are kept per layout)."""
        return self.config.model_dump_json()

    def projection(self, width: int) -> np.ndarray:
        """The fixed ``(width, embedding_dims)`` projection (the same for one seed)."""
        p = self._projection
        if p is None or p.shape[0] != width:
            rng = np.random.default_rng([self.seed, width])
            p = self._projection = (
                rng.standard_normal((width, self.config.embedding_dims)) * PROJECTION_STD
            )
        return p

    def vector(self, request: RoutingRequest) -> np.ndarray:
        """The context vector of ``request`` (``dimension`` wide)."""
        x = np.zeros(self.dimension)
        x[0] = 1.0
        at = 1
        if self.config.prompt_tokens:
            x[1] = math.log1p(request.prompt_tokens) / TOKENS_SCALE
            at = 2
        results = request.signals or {}
        slots = self.config.hash_slots
        for name in self.signals:
            result = results.get(name)
            if result is not None:
                x[at] = float(result.matched)
                value: Any = result.value
                if isinstance(value, str):
                    x[at + 2 + zlib.crc32(value.encode()) % slots] = 1.0
                elif isinstance(value, int | float) and not isinstance(value, bool):
                    x[at + 1] = squash(float(value))
            at += self.per_signal
        if self.config.embedding_dims and request.vector is not None:
            v = np.asarray(request.vector, dtype=np.float64).ravel()
            x[self.embedding_at :] = v @ self.projection(v.shape[0])
        return x
