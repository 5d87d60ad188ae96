"""Hyper-parameter selection on a validation split: fit on train rows, score AIQ on val rows.

Only the rows it is given are read, and the runner gives it the train and validation rows
of ``split_indices``, never the test rows (``tests/eval/test_tuning.py`` checks this).

>>> best, table = tune("knn", x, outcomes, train, val)  # doctest: +SKIP
>>> best  # doctest: +SKIP
{'n_neighbors': 80, 'prior_strength': 4.0}
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crossroads.eval import metrics
from crossroads.routers.base import Outcomes, Router
from crossroads.routers.objectives import lambda_grid, select
from crossroads.routers.registry import make

# Small grids around the defaults: each point is one fit on train, so the full evaluation
# stays within its time budget. Grids are chosen from the literature and the data sizes
# (440-20,000 prompts), never from test results.
GRIDS: dict[str, dict[str, list[Any]]] = {
    "knn": {"n_neighbors": [10, 40, 160], "prior_strength": [1.0, 10.0]},
    "bt": {"n_neighbors": [20, 80], "prior_strength": [2.0, 20.0]},
    "mlp": {"alpha": [1e-3, 1e-1]},
    "linear": {"alpha": [1.0, 10.0, 100.0]},
    "logistic": {"C": [0.1, 1.0, 10.0]},
    "mf": {"rank": [4, 16], "alpha": [1.0, 10.0, 100.0]},
    "cluster": {"n_clusters": [16, 64]},
    "pairwise": {"C": [0.1, 1.0, 10.0]},
}


# Below this many non-test rows, one validation split is too small to tell routers apart
# (121 prompts on AlpacaEval: eight routers within 0.007 AIQ), so selection averages
# ``CV_FOLDS`` folds of train+validation instead. Test rows are never among them.
CV_BELOW_ROWS = 2000
CV_FOLDS = 5


def selection_folds(
    train: np.ndarray, val: np.ndarray, *, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(fit rows, score rows)`` pairs for model selection, from train and val rows only:
    ``[(train, val)]``, or ``CV_FOLDS`` folds of train+val when they hold fewer than
    ``CV_BELOW_ROWS`` rows."""
    pool = np.concatenate([train, val])
    if len(pool) >= CV_BELOW_ROWS or len(val) == 0:
        return [(train, val)]
    order = np.random.default_rng(seed).permutation(pool)
    folds = np.array_split(order, CV_FOLDS)
    return [(np.sort(np.setdiff1d(pool, fold)), np.sort(fold)) for fold in folds]


@dataclass
class Tuned:
    """The chosen parameters of one router and every candidate's validation score."""

    name: str
    params: dict[str, Any]
    val_aiq: float
    table: list[tuple[dict[str, Any], float]] = field(default_factory=list)


def validation_aiq(
    router: Router,
    features: np.ndarray,
    outcomes: Outcomes,
    train: np.ndarray,
    val: np.ndarray,
) -> float:
    """AIQ on ``val`` rows of ``router`` fitted on ``train`` rows (the router is refitted)."""
    router.fit(features[train], outcomes.subset(train))
    return score_rows(router, features[val], outcomes.subset(val), reference=outcomes.subset(train))


def score_rows(router: Router, features: np.ndarray, held: Outcomes, reference: Outcomes) -> float:
    """AIQ of a fitted ``router`` on held-out rows (missing outcomes scored at the train mean)."""
    means = np.nan_to_num(np.nanmean(reference.quality, axis=0), nan=0.0)
    q = np.where(np.isnan(held.quality), means, held.quality)
    assert held.cost is not None
    c = held.cost
    pred_q, pred_c = router.predict(features), router.predict_cost(features)
    choices = np.stack([select(pred_q, pred_c, lam=lam) for lam in lambda_grid(pred_q, pred_c)])
    single_c = c.mean(axis=0)
    return metrics.aiq(
        metrics.operating_points(q, c, choices), float(single_c.min()), float(single_c.max())
    )


def tune(
    name: str,
    features: np.ndarray,
    outcomes: Outcomes,
    train: np.ndarray,
    val: np.ndarray,
    grid: dict[str, list[Any]] | None = None,
    router: Router | None = None,
    folds: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> Tuned:
    """Grid search of router ``name`` (default grid: ``GRIDS[name]``) by validation AIQ
    (fit on ``train``, score on ``val``; or the mean over ``folds`` when given).

    Candidates are ``router`` (default: ``make(name)``) with each grid point's parameters.
    Ties keep the earlier candidate; a router without a grid keeps its parameters (and is
    scored once so every router has a validation AIQ).
    """
    from sklearn.base import clone

    base = make(name) if router is None else router
    grid = GRIDS.get(name, {}) if grid is None else grid
    keys = [k for k in grid if k in base.get_params()]
    table: list[tuple[dict[str, Any], float]] = []
    for values in itertools.product(*(grid[k] for k in keys)):
        params = dict(zip(keys, values, strict=True))
        candidate = clone(base).set_params(**params)
        scores = [
            validation_aiq(clone(candidate), features, outcomes, fit_rows, score_rows)
            for fit_rows, score_rows in (folds or [(train, val)])
        ]
        table.append((params, float(np.mean(scores))))
    best_params, best_score = max(table, key=lambda row: row[1])
    return Tuned(name, best_params, best_score, table)
