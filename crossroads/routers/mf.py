"""Matrix-factorization router: low-rank prompt x model factors, prompt factors from features.

The training quality matrix (centred per model) is factorised with a truncated SVD,
``Y ~= P V^T``; a ridge regression maps prompt features to the prompt factors ``P``. A new
prompt scores ``ridge(x) V^T + mean``. Because every model is a vector ``v`` in the same
factor space, a model that joins later needs only a few labelled prompts: ``add_model``
solves for its ``v`` by least squares without refitting the others (the cold-start case).
"""

from __future__ import annotations

import numpy as np

from crossroads.routers.base import Outcomes, Router, fill_missing


class MatrixFactorizationRouter(Router):
    """Bilinear prompt x model router (RouteLLM-style MF, fitted by SVD + ridge)."""

    def __init__(self, rank: int = 16, alpha: float = 10.0, embedder: object | None = None):
        self.rank = rank
        self.alpha = alpha
        self.embedder = embedder

    def _fit(self, features: np.ndarray, outcomes: Outcomes) -> None:
        from sklearn.linear_model import Ridge

        y = fill_missing(outcomes.quality)
        self.mean_ = y.mean(axis=0)
        u, s, vt = np.linalg.svd(y - self.mean_, full_matrices=False)
        r = max(1, min(self.rank, len(s)))
        self.model_factors_ = vt[:r].T  # (m, r)
        self.encoder_ = Ridge(alpha=self.alpha).fit(features, u[:, :r] * s[:r])

    def _prompt_factors(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.encoder_.predict(features)).reshape(len(features), -1)

    def _predict(self, features: np.ndarray) -> np.ndarray:
        pred = self._prompt_factors(features) @ self.model_factors_.T + self.mean_
        return np.asarray(np.clip(pred, 0.0, 1.0))

    def add_model(
        self,
        name: str,
        prompts: np.ndarray | list[str],
        quality: np.ndarray,
        cost: float | None = None,
        alpha: float = 1.0,
    ) -> MatrixFactorizationRouter:
        """Add a model from a few labelled prompts (``quality`` per prompt) without refitting."""
        self._check_fitted()
        if name in self.models_:
            raise ValueError(f"model {name!r} is already known to this router: {self.models_}")
        q = np.asarray(quality, dtype=np.float64)
        known = ~np.isnan(q)
        if known.sum() < 2:
            raise ValueError(
                f"add_model needs >= 2 labelled prompts for {name!r}; got {known.sum()}"
            )
        factors = self._prompt_factors(self._features(prompts))[known]
        mean = float(q[known].mean())
        r = factors.shape[1]
        v = np.linalg.solve(factors.T @ factors + alpha * np.eye(r), factors.T @ (q[known] - mean))
        self.models_ = [*self.models_, name]
        self.mean_ = np.r_[self.mean_, mean]
        self.model_factors_ = np.vstack([self.model_factors_, v])
        new_cost = float(np.mean(self.cost_mean_)) if cost is None else float(cost)
        self.cost_mean_ = np.r_[self.cost_mean_, new_cost]
        self.quality_mean_ = np.r_[self.quality_mean_, mean]
        return self
