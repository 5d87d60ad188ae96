"""The router contract: a scikit-learn style estimator over prompts and per-model outcomes.

``fit(prompts, outcomes)`` learns and returns self; ``predict(prompts)`` returns an
``(n_prompts, n_models)`` array of expected quality; ``predict_cost`` the expected cost
(by default each model's mean training cost). ``prompts`` is either a list of texts (embedded
with the router's ``embedder``) or a 2-D array of precomputed features (embeddings, or task
one-hot vectors for datasets without prompt text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from crossroads.exceptions import NotFittedError

Prompts = Sequence[str] | np.ndarray

# Batches up to this size predict with one BLAS thread. A one-prompt product is ~0.1 ms of
# work; handing it to OpenBLAS's thread pool on a busy 2-core machine made the median
# 0.1 ms but the 90th percentile 10-20 ms (threads waiting for a core).
SMALL_BATCH = 16
_blas_controller: Any = None


def _single_threaded_blas() -> Any:
    """A context limiting BLAS to one thread (the controller is built once: ~10 ms)."""
    global _blas_controller
    if _blas_controller is None:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

        _blas_controller = ThreadpoolController()
    return _blas_controller.limit(limits=1, user_api="blas")


@dataclass
class Outcomes:
    """What each model achieved on each prompt: ``quality`` in [0,1] (NaN = unknown), ``cost``."""

    models: list[str]
    quality: np.ndarray  # (n_prompts, n_models)
    cost: np.ndarray | None = None  # (n_prompts, n_models), any unit, NaN = unknown

    def __post_init__(self) -> None:
        self.quality = np.asarray(self.quality, dtype=np.float64)
        if self.quality.ndim != 2 or self.quality.shape[1] != len(self.models):
            raise ValueError(
                f"quality must be (n_prompts, {len(self.models)}) for models {self.models}; "
                f"got shape {self.quality.shape}"
            )
        if self.cost is not None:
            self.cost = np.asarray(self.cost, dtype=np.float64)
            if self.cost.shape != self.quality.shape:
                raise ValueError(f"cost shape {self.cost.shape} != quality {self.quality.shape}")

    def __len__(self) -> int:
        return int(self.quality.shape[0])

    def subset(self, rows: np.ndarray) -> Outcomes:
        """The outcomes of the given rows (index array or boolean mask)."""
        cost = None if self.cost is None else self.cost[rows]
        return Outcomes(list(self.models), self.quality[rows], cost)


def fill_missing(quality: np.ndarray) -> np.ndarray:
    """Replace NaN qualities by the model's mean (0.5 if the model has no result at all)."""
    means = np.nanmean(np.where(np.isnan(quality).all(0), 0.5, quality), axis=0)
    return np.where(np.isnan(quality), means, quality)


class Router(BaseEstimator):  # type: ignore[misc]
    """Base class: subclasses implement ``_fit(features, outcomes)`` and ``_predict(features)``.

    Set ``uses_prompts = False`` for routers that ignore the prompt (baselines).
    """

    uses_prompts = True
    embedder: Any  # set by subclasses' constructors (None: MiniLM on first use)

    def fit(self, prompts: Prompts, outcomes: Outcomes) -> Router:
        """Learn from ``outcomes`` of ``prompts``; returns self."""
        if not isinstance(outcomes, Outcomes):
            raise TypeError(f"outcomes must be crossroads.routers.Outcomes, not {type(outcomes)}")
        if len(outcomes) == 0:
            raise ValueError("fit needs at least one prompt with outcomes; got none")
        features = self._features(prompts, fitting=True)
        if features.shape[0] != len(outcomes):
            raise ValueError(
                f"{features.shape[0]} prompts but {len(outcomes)} rows of outcomes: they must match"
            )
        self.models_ = list(outcomes.models)
        cost = outcomes.cost
        if cost is None or np.isnan(cost).all():
            self.cost_mean_ = np.ones(len(self.models_))
        else:
            self.cost_mean_ = np.nan_to_num(np.nanmean(cost, axis=0), nan=float(np.nanmean(cost)))
        self.quality_mean_ = np.nanmean(fill_missing(outcomes.quality), axis=0)
        self._fit(features, outcomes)
        return self

    def predict(self, prompts: Prompts) -> np.ndarray:
        """Expected quality of each model on each prompt: ``(n_prompts, n_models)``."""
        self._check_fitted()
        features = self._features(prompts)
        if len(features) > SMALL_BATCH:
            return np.asarray(self._predict(features), dtype=np.float64)
        with _single_threaded_blas():
            return np.asarray(self._predict(features), dtype=np.float64)

    def predict_cost(self, prompts: Prompts) -> np.ndarray:
        """Expected cost of each model on each prompt (the model's mean training cost)."""
        self._check_fitted()
        n = len(prompts)
        return np.broadcast_to(self.cost_mean_, (n, len(self.models_))).copy()

    def select(self, prompts: Prompts, **objective: Any) -> list[str]:
        """The chosen model per prompt under ``objective`` (see ``selection.select``)."""
        from crossroads.routers.objectives import select

        chosen = select(self.predict(prompts), self.predict_cost(prompts), **objective)
        return [self.models_[i] for i in chosen]

    # -- for subclasses -------------------------------------------------------------------
    def _fit(self, features: np.ndarray, outcomes: Outcomes) -> None:
        raise NotImplementedError

    def _predict(self, features: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _features(self, prompts: Prompts, fitting: bool = False) -> np.ndarray:
        if isinstance(prompts, np.ndarray):
            if prompts.ndim != 2:
                raise ValueError(
                    f"feature arrays must be 2-D (n_prompts, dim); got {prompts.shape}"
                )
            return prompts.astype(np.float32, copy=False)
        texts = list(prompts)
        if not self.uses_prompts:
            return np.zeros((len(texts), 1), dtype=np.float32)
        embedder = getattr(self, "embedder", None)
        if embedder is None:
            from crossroads.embeddings import Embedder

            embedder = Embedder()
            if fitting:
                self.embedder = embedder
        return embedder.encode(texts)

    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            name = type(self).__name__
            raise NotFittedError(
                f"This {name} is not fitted yet. Call fit(prompts, outcomes) or load an "
                "artifact with crossroads.routers.load(path)."
            )
