"""Cold start: how well a router handles a model that joins with only a few labelled prompts.

The matrix-factorization router learns every model as a vector in a shared factor space, so a
late model needs only its vector: ``MatrixFactorizationRouter.add_model`` fits it from ``k``
labelled prompts. ``cold_start_study`` fits MF on all other models (train split), adds the
held-out model from ``k`` of its train labels, and reports test-split AIQ and the new model's
prediction error, against (a) predicting the late model's mean over its ``k`` labels for
every prompt and (b) MF fitted with the late model's full train labels (the ceiling).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crossroads.eval import metrics
from crossroads.eval.datasets import RoutingDataset, features_for, load_dataset, split_indices
from crossroads.routers.mf import MatrixFactorizationRouter
from crossroads.routers.objectives import lambda_grid, select


def _aiq(pred: np.ndarray, pred_cost: np.ndarray, q: np.ndarray, c: np.ndarray) -> float:
    choices = np.stack([select(pred, pred_cost, lam=lam) for lam in lambda_grid(pred, pred_cost)])
    return metrics.summarize(q, c, choices)["aiq"]


def cold_start_study(
    data: str | Path | RoutingDataset,
    model: str,
    ks: tuple[int, ...] = (10, 25, 50, 100),
    *,
    seed: int = 0,
    features: np.ndarray | None = None,
    rank: int = 16,
) -> list[dict[str, Any]]:
    """Rows ``{k, method, aiq, rmse_new_model}`` on the test split (see module docstring)."""
    ds = data if isinstance(data, RoutingDataset) else load_dataset(data)
    x = features if features is not None else features_for(ds)[0]
    split = split_indices(ds, seed=seed)
    train, test = split["train"], split["test"]
    out = ds.outcomes
    j = out.models.index(model)
    others = [i for i in range(len(out.models)) if i != j]
    assert out.cost is not None  # load_dataset always prices outcomes
    q_fill = np.where(np.isnan(out.quality), np.nanmean(out.quality[train], 0), out.quality)
    q_test, c_test = q_fill[test], out.cost[test]
    new_cost = float(np.nanmean(out.cost[train, j]))

    full = MatrixFactorizationRouter(rank=rank).fit(x[train], out.subset(train))
    pf = full.predict(x[test])
    rows = [
        {
            "k": int(len(train)),
            "method": "mf, all train labels (ceiling)",
            "aiq": _aiq(pf, full.predict_cost(x[test]), q_test, c_test),
            "rmse_new_model": float(np.sqrt(np.mean((pf[:, j] - q_test[:, j]) ** 2))),
        }
    ]
    base_outcomes = out.subset(train)
    assert base_outcomes.cost is not None
    base_outcomes = type(base_outcomes)(
        [out.models[i] for i in others],
        base_outcomes.quality[:, others],
        base_outcomes.cost[:, others],
    )
    rng = np.random.default_rng(seed)
    order = [*others, j]
    back = np.argsort(order)  # router column -> dataset column
    for k in ks:
        few = rng.choice(train, size=min(k, len(train)), replace=False)
        router = MatrixFactorizationRouter(rank=rank).fit(x[train], base_outcomes)
        router.add_model(model, x[few], out.quality[few, j], cost=new_cost)
        pred = router.predict(x[test])[:, back]
        cost = router.predict_cost(x[test])[:, back]
        mean_pred = pred.copy()
        mean_pred[:, j] = np.nanmean(out.quality[few, j])
        for method, p in (("mf + add_model", pred), ("mean of k labels", mean_pred)):
            rows.append(
                {
                    "k": int(k),
                    "method": method,
                    "aiq": _aiq(p, cost, q_test, c_test),
                    "rmse_new_model": float(np.sqrt(np.mean((p[:, j] - q_test[:, j]) ** 2))),
                }
            )
    return rows
