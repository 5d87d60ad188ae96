"""Ensemble router: the mean of several routers' predictions (default kNN + logistic + MLP).

Their errors are partly independent (local averaging, a linear model, a non-linear one), so
the average ranks models better than each member on most datasets.
"""

from __future__ import annotations

import numpy as np

from crossroads.routers.base import Outcomes, Router


class EnsembleRouter(Router):
    """Averages the predicted quality of the registered routers named in ``members``."""

    def __init__(
        self,
        members: tuple[str, ...] = ("knn", "logistic", "mlp"),
        weights: tuple[float, ...] | None = None,
        embedder: object | None = None,
    ) -> None:
        self.members = members
        self.weights = weights
        self.embedder = embedder

    def _fit(self, features: np.ndarray, outcomes: Outcomes) -> None:
        from crossroads.routers.registry import make

        if not self.members:
            raise ValueError("EnsembleRouter needs at least one member router name")
        if self.weights is not None and len(self.weights) != len(self.members):
            raise ValueError(
                f"weights {self.weights} must have one value per member {self.members}"
            )
        self.routers_ = [make(name).fit(features, outcomes) for name in self.members]

    def _predict(self, features: np.ndarray) -> np.ndarray:
        preds = np.stack([r.predict(features) for r in self.routers_])
        return np.average(preds, axis=0, weights=self.weights)
