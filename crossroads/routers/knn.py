"""k-nearest-neighbour router (RouterBench): average the outcomes of similar training prompts."""

from __future__ import annotations

import numpy as np

from crossroads.routers.base import Outcomes, Router, fill_missing


class KNNRouter(Router):
    """Predicts each model's quality as the similarity-weighted mean over the ``n_neighbors``
    most cosine-similar training prompts, shrunk toward the model's global mean with
    ``prior_strength`` pseudo-neighbours.
    """

    def __init__(
        self,
        n_neighbors: int = 40,
        weights: str = "distance",
        prior_strength: float = 1.0,
        embedder: object | None = None,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.prior_strength = prior_strength
        self.embedder = embedder

    def _fit(self, features: np.ndarray, outcomes: Outcomes) -> None:
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        self.train_features_ = (features / np.maximum(norms, 1e-12)).astype(np.float32)
        self.train_quality_ = fill_missing(outcomes.quality).astype(np.float32)

    def _predict(self, features: np.ndarray) -> np.ndarray:
        queries = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        k = min(self.n_neighbors, len(self.train_features_))
        out = np.empty((len(queries), self.train_quality_.shape[1]))
        for start in range(0, len(queries), 1024):  # bound memory on large test sets
            sims = queries[start : start + 1024] @ self.train_features_.T
            idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            top = np.take_along_axis(sims, idx, axis=1)
            uniform = self.weights != "distance"
            w = np.ones_like(top) if uniform else np.maximum(top, 0.0) + 1e-6
            neigh = self.train_quality_[idx]  # (b, k, m)
            num = np.einsum("bk,bkm->bm", w, neigh) + self.prior_strength * self.quality_mean_
            out[start : start + 1024] = num / (w.sum(1, keepdims=True) + self.prior_strength)
        return out
