"""Prompt-free baselines: a random router and the per-model mean ("best single model").

The oracle needs the true outcomes, so it lives in the evaluation harness
(``crossroads.eval.metrics.oracle_choice``), not here.
"""

from __future__ import annotations

import numpy as np

from crossroads.routers.base import Outcomes, Router


class RandomRouter(Router):
    """Predicts independent uniform random qualities: with ``lam`` it mixes models at random."""

    uses_prompts = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _fit(self, features: np.ndarray, outcomes: Outcomes) -> None:
        self.n_models_ = len(outcomes.models)

    def _predict(self, features: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return rng.random((features.shape[0], self.n_models_))


class MeanRouter(Router):
    """Predicts each model's mean training quality for every prompt (shrunk toward 0.5).

    Swept over ``lam`` it walks the single models from the best to the cheapest; it is the
    prompt-free reference every learned router must beat.
    """

    uses_prompts = False

    def __init__(self, prior_strength: float = 0.0) -> None:
        self.prior_strength = prior_strength

    def _fit(self, features: np.ndarray, outcomes: Outcomes) -> None:
        n = np.sum(~np.isnan(outcomes.quality), axis=0)
        total = np.nansum(outcomes.quality, axis=0)
        self.mean_ = (total + 0.5 * self.prior_strength) / np.maximum(n + self.prior_strength, 1)

    def _predict(self, features: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.mean_, (features.shape[0], len(self.mean_))).copy()
