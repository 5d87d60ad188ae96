"""The offline evaluation: fit each router on train, sweep its trade-off on test, score it.

``evaluate`` is the library entry point behind ``crossroads eval``. Every number it returns
comes from the test split; fit sees only the train split (the leakage test checks this).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossroads.eval import metrics
from crossroads.eval.datasets import RoutingDataset, features_for, load_dataset, split_indices
from crossroads.routers.base import Router
from crossroads.routers.objectives import lambda_grid, select
from crossroads.routers.registry import make
from crossroads.types import EmbeddingWindow

DEFAULT_ROUTERS = [
    "mean",
    "knn",
    "mlp",
    "linear",
    "logistic",
    "pairwise",
    "mf",
    "bt",
    "cluster",
    "ensemble",
]


@dataclass
class RouterResult:
    """One router (or baseline) on the test split: curve, metrics, 95% intervals, timings."""

    name: str
    kind: str  # "learned", "baseline"
    points: np.ndarray  # (L, 2) mean cost, mean quality
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    fit_seconds: float | None = None
    predict_ms_per_prompt: float | None = None
    params: dict[str, Any] = field(default_factory=dict)  # chosen on validation, if tuned
    val_aiq: float | None = None  # AIQ on the validation split (fit on train)


@dataclass
class EvalResult:
    """Everything one ``evaluate`` call measured, ready for ``report.write_report``."""

    dataset: str
    models: list[str]
    split_sizes: dict[str, int]
    split_rule: str
    features: str
    cost_unit: str
    cost_note: str
    best_single: str
    strong_weak: tuple[str, str] | None
    results: list[RouterResult]
    single_points: dict[str, tuple[float, float]]
    cost_ratio: float
    seconds: float
    seed: int
    excluded_models: list[str] = field(default_factory=list)
    tuned: bool = False
    selected: str | None = None  # the learned router with the best validation AIQ
    selected_on: str = "validation split"  # or "5 folds of train+validation"


def evaluate(
    data: str | Path | RoutingDataset,
    routers: list[str] | dict[str, Router] | None = None,
    *,
    seed: int = 0,
    n_boot: int = 200,
    progress: bool = False,
    features: np.ndarray | None = None,
    tune: bool = False,
    window: EmbeddingWindow = "head_tail",
) -> EvalResult:
    """Fit every router on the train split and evaluate it, with the baselines, on test.

    With ``tune``, each router's hyper-parameters are first chosen by grid search
    (``tuning.GRIDS``): fitted on train, scored by AIQ on the validation split. Either way
    every router gets a validation AIQ, and the learned router with the best one is
    reported as ``selected``: a choice that never looks at test. ``window``: what the
    encoder reads of prompts longer than its 256 tokens.
    """
    from sklearn.base import clone

    from crossroads.eval import predictability
    from crossroads.eval.tuning import score_rows, selection_folds
    from crossroads.eval.tuning import tune as grid_search

    started = time.perf_counter()
    ds = data if isinstance(data, RoutingDataset) else load_dataset(data)
    if features is None:
        features, feature_kind = features_for(ds, progress=progress, window=window)
    else:
        feature_kind = "given"
    split = split_indices(ds, seed=seed)
    train, val, test = split["train"], split["val"], split["test"]
    out = ds.outcomes
    assert out.cost is not None  # load_dataset always prices outcomes
    q_test, c_test = _filled(out.quality[test], out.quality[train]), out.cost[test]
    models = list(out.models)
    strong_weak = None
    adv_kwargs: dict[str, Any] = {}
    if len(models) == 2:
        # The strong model is the one better on *train*, so test outcomes choose nothing.
        q_train = np.nanmean(out.quality[train], axis=0)
        s = int(np.argmax(q_train))
        strong_weak = (models[s], models[1 - s])
        adv_kwargs = {"strong": s, "weak": 1 - s}
    # "Best" and "cheap" models for the substitution AUC come from train, like strong/weak.
    train_cost = np.nanmean(out.cost[train], axis=0)
    best_train = int(np.argmax(np.nanmean(out.quality[train], axis=0)))
    cheap = predictability.cheap_models(train_cost, best_train)
    subst = predictability.substitution_labels(q_test, best_train, cheap) if cheap.size else None

    def substitution_auc(predicted: np.ndarray) -> dict[str, float]:
        if subst is None:
            return {}
        scores = predictability.substitution_scores(predicted, best_train, cheap)
        return {"subst_auc": predictability.roc_auc(subst, scores)}

    todo: dict[str, Router] = (
        {name: make(name) for name in (routers or DEFAULT_ROUTERS)}
        if not isinstance(routers, dict)
        else dict(routers)
    )
    results: list[RouterResult] = []
    items = list(todo.items())
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc=f"{ds.name}: routers", unit="router")
    folds = selection_folds(train, val, seed=seed)
    tuned_params: dict[str, dict[str, Any]] = {}
    for name, router in items:
        params: dict[str, Any] = {}
        val_aiq = None
        if router.uses_prompts and tune and len(val):
            if name == "ensemble" and "member_params" in router.get_params():
                router = clone(router).set_params(member_params=dict(tuned_params))
            found = grid_search(name, features, out, train, val, router=router, folds=folds)
            params, val_aiq = found.params, found.val_aiq
            tuned_params[name] = params
            router = clone(router).set_params(**params)
        t0 = time.perf_counter()
        router.fit(features[train], out.subset(train))
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred_q = router.predict(features[test])
        predict_ms = (time.perf_counter() - t0) * 1000 / len(test)
        pred_c = router.predict_cost(features[test])
        if val_aiq is None and len(folds) == 1 and len(val):
            val_aiq = score_rows(router, features[val], out.subset(val), out.subset(train))
        elif val_aiq is None and len(val):
            val_aiq = grid_search(
                name, features, out, train, val, grid={}, router=router, folds=folds
            ).val_aiq
        grid = lambda_grid(pred_q, pred_c)
        choices = np.stack([select(pred_q, pred_c, lam=lam) for lam in grid])
        kwargs = dict(adv_kwargs)
        if strong_weak is not None:
            kwargs["advantage"] = pred_q[:, kwargs["strong"]] - pred_q[:, kwargs["weak"]]
        results.append(
            RouterResult(
                name=name,
                kind="baseline" if not router.uses_prompts else "learned",
                points=metrics.operating_points(q_test, c_test, choices),
                metrics={
                    **metrics.summarize(q_test, c_test, choices, **kwargs),
                    **substitution_auc(pred_q),
                },
                intervals=metrics.bootstrap(
                    q_test, c_test, choices, n_boot=n_boot, seed=seed, **kwargs
                ),
                fit_seconds=fit_s,
                predict_ms_per_prompt=predict_ms,
                params=params,
                val_aiq=val_aiq,
            )
        )
    learned = [r for r in results if r.kind == "learned" and r.val_aiq is not None]
    selected = max(learned, key=lambda r: r.val_aiq or 0.0).name if learned else None
    results.extend(_baselines(q_test, c_test, models, adv_kwargs, n_boot, seed))
    for r in results:
        if r.name == "oracle":
            r.metrics.update(substitution_auc(q_test))
    single_q, single_c = q_test.mean(0), c_test.mean(0)
    best = metrics.best_single(q_test, c_test)
    rule = (
        "dataset's own train/test split; validation carved from train (seeded)"
        if {"train", "test"} <= set(np.unique(ds.splits).tolist())
        else "seeded random split: 55% train, 15% validation, 30% test"
    )
    return EvalResult(
        dataset=ds.name,
        models=models,
        split_sizes={k: len(v) for k, v in split.items()},
        split_rule=rule,
        features=feature_kind,
        cost_unit=ds.cost_unit,
        cost_note=ds.cost_note,
        best_single=models[best],
        strong_weak=strong_weak,
        results=results,
        single_points={m: (float(single_c[i]), float(single_q[i])) for i, m in enumerate(models)},
        cost_ratio=float(single_c.max() / max(single_c.min(), 1e-300)),
        seconds=time.perf_counter() - started,
        seed=seed,
        excluded_models=list(ds.excluded_models),
        tuned=tune,
        selected=selected,
        selected_on=(
            "validation split" if len(folds) == 1 else f"{len(folds)} folds of train+validation"
        ),
    )


def _filled(quality: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Test outcomes with missing results scored at the model's train mean (rare: <0.1%)."""
    means = np.nan_to_num(np.nanmean(reference, axis=0), nan=0.0)
    return np.where(np.isnan(quality), means, quality)


def _baselines(
    q: np.ndarray,
    c: np.ndarray,
    models: list[str],
    adv_kwargs: dict[str, Any],
    n_boot: int,
    seed: int,
) -> list[RouterResult]:
    """Oracle, random mixing of the single models, and each single model, on test."""
    n, m = q.shape
    found: list[RouterResult] = []
    lambdas = lambda_grid(q, c, n=120)
    oracle = metrics.oracle_choices(q, c, lambdas)
    singles = np.repeat(np.arange(m)[:, None], n, axis=1)
    # "random": routing each prompt at random between models reaches, in expectation, any
    # mixture of the single models: its curve is theirs and its hull their hull.
    for name, choices, extra in (
        (
            "oracle",
            oracle,
            {"advantage": q[:, adv_kwargs["strong"]] - q[:, adv_kwargs["weak"]]}
            if adv_kwargs
            else {},
        ),
        (
            "random",
            singles,
            {"advantage": np.random.default_rng(seed).random(n)} if adv_kwargs else {},
        ),
    ):
        kwargs = {**adv_kwargs, **extra}
        found.append(
            RouterResult(
                name=name,
                kind="baseline",
                points=metrics.operating_points(q, c, choices),
                metrics=metrics.summarize(q, c, choices, **kwargs),
                intervals=metrics.bootstrap(q, c, choices, n_boot=n_boot, seed=seed, **kwargs),
            )
        )
    for j, model in enumerate(models):
        choices = singles[j : j + 1]
        found.append(
            RouterResult(
                name=f"single:{model}",
                kind="single",
                points=metrics.operating_points(q, c, choices),
                metrics=metrics.summarize(q, c, choices),
            )
        )
    return found
