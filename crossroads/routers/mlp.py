"""MLP router (RouterBench): one multi-output network predicting every model's quality."""

from __future__ import annotations

import numpy as np

from crossroads.routers.base import Outcomes, Router, fill_missing


class MLPRouter(Router):
    """A scikit-learn ``MLPRegressor`` from prompt features to per-model quality, with early
    stopping on a seeded 10% of the training prompts.
    """

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (128,),
        alpha: float = 1e-3,
        max_iter: int = 60,
        seed: int = 0,
        embedder: object | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.max_iter = max_iter
        self.seed = seed
        self.embedder = embedder

    def _fit(self, features: np.ndarray, outcomes: Outcomes) -> None:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor

        target = fill_missing(outcomes.quality)
        self.offset_ = target.mean(axis=0)
        early = len(features) >= 200
        self.net_ = MLPRegressor(
            hidden_layer_sizes=self.hidden_layer_sizes,
            alpha=self.alpha,
            max_iter=self.max_iter,
            early_stopping=early,
            n_iter_no_change=5,
            random_state=self.seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.net_.fit(features, target - self.offset_)

    def _predict(self, features: np.ndarray) -> np.ndarray:
        pred = self.net_.predict(features).reshape(len(features), -1) + self.offset_
        return np.asarray(np.clip(pred, 0.0, 1.0))
