"""Ensemble router: the mean of several routers' predictions (default kNN + logistic + MLP).

Their errors are partly independent (local averaging, a linear model, a non-linear one), so
the average ranks models better than each member on most datasets.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crossroads.routers.base import Outcomes, Router


class EnsembleRouter(Router):
    """Averages the predicted quality of the registered routers named in ``members``,
    each built with its parameters from ``member_params`` (name -> params; default: its
    defaults), e.g. the ones chosen on validation by ``crossroads.eval.tuning``.
    """

    def __init__(
        self,
        members: tuple[str, ...] = ("knn", "logistic", "mlp"),
        weights: tuple[float, ...] | None = None,
        member_params: dict[str, dict[str, Any]] | None = None,
        embedder: object | None = None,
    ) -> None:
        self.members = members
        self.weights = weights
        self.member_params = member_params
        self.embedder = embedder

    def _fit(self, features: np.ndarray, outcomes: Outcomes) -> None:
        from crossroads.routers.registry import make

        if not self.members:
            raise ValueError("EnsembleRouter needs at least one member router name")
        if self.weights is not None and len(self.weights) != len(self.members):
            raise ValueError(
                f"weights {self.weights} must have one value per member {self.members}"
            )
        params = self.member_params or {}
        self.routers_ = [
            make(name, **params.get(name, {})).fit(features, outcomes) for name in self.members
        ]

    def _predict(self, features: np.ndarray) -> np.ndarray:
        # Members' _predict directly: features are converted and BLAS is limited once, here.
        preds = np.stack(
            [np.asarray(r._predict(features), dtype=np.float64) for r in self.routers_]
        )
        return np.average(preds, axis=0, weights=self.weights)
