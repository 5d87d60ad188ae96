"""Cluster router (UniRoute / GreenServ "semantic cluster"): k-means on prompt features,
then each model's mean quality per cluster, shrunk toward its global mean.
"""

from __future__ import annotations

import numpy as np

from crossroads.routers.base import Outcomes, Router, fill_missing


class ClusterRouter(Router):
    """Predicts the per-cluster mean quality of each model for the prompt's nearest centroid.

    ``prior_strength`` pseudo-prompts at the global mean keep small clusters honest.
    """

    def __init__(
        self,
        n_clusters: int = 32,
        prior_strength: float = 5.0,
        seed: int = 0,
        embedder: object | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.prior_strength = prior_strength
        self.seed = seed
        self.embedder = embedder

    def _fit(self, features: np.ndarray, outcomes: Outcomes) -> None:
        from sklearn.cluster import KMeans

        k = max(1, min(self.n_clusters, len(np.unique(features, axis=0))))
        self.kmeans_ = KMeans(n_clusters=k, n_init=3, random_state=self.seed).fit(features)
        y = fill_missing(outcomes.quality)
        labels = self.kmeans_.labels_
        counts = np.bincount(labels, minlength=k).astype(np.float64)
        sums = np.zeros((k, y.shape[1]))
        np.add.at(sums, labels, y)
        prior = self.prior_strength
        self.cluster_quality_ = (sums + prior * y.mean(0)) / (counts[:, None] + prior)

    def _predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.cluster_quality_[self.kmeans_.predict(features)])
