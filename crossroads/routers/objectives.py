"""Objectives over predicted quality and cost, shared by every router (the decision-level
selectors that pick among candidates live in :mod:`crossroads.selection`).

Two objectives, both restricted to the allowed candidates:
- ``lam``: maximise ``quality - lam * cost``;
- ``quality_target``: the cheapest model whose predicted quality >= target, or the model with
  the highest predicted quality when none reaches it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def select(
    quality: np.ndarray,
    cost: np.ndarray,
    *,
    lam: float | None = None,
    quality_target: float | None = None,
    candidates: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Index of the chosen model per row of ``quality``/``cost`` (both ``(n, n_models)``).

    >>> select(np.array([[0.9, 0.6]]), np.array([[10.0, 1.0]]), lam=0.01).tolist()
    [0]
    >>> select(np.array([[0.9, 0.6]]), np.array([[10.0, 1.0]]), quality_target=0.5).tolist()
    [1]
    """
    if (lam is None) == (quality_target is None):
        raise ValueError("give exactly one objective: lam=<float> or quality_target=<float>")
    quality = np.atleast_2d(np.asarray(quality, dtype=np.float64))
    cost = np.atleast_2d(np.asarray(cost, dtype=np.float64))
    allowed = np.zeros(quality.shape[1], dtype=bool)
    if candidates is None:
        allowed[:] = True
    else:
        allowed[np.asarray(candidates, dtype=int)] = True
        if not allowed.any():
            raise ValueError("candidates is empty: give at least one model index")
    if lam is not None:
        # lam = inf means the cheapest, ties broken by quality.
        score = -cost + 1e-12 * quality if lam == np.inf else quality - lam * cost
        score = np.where(allowed, score, -np.inf)
        return np.asarray(np.argmax(score, axis=1))
    meets = (quality >= quality_target) & allowed
    cheapest = np.argmin(np.where(meets, cost, np.inf), axis=1)
    best = np.argmax(np.where(allowed, quality, -np.inf), axis=1)
    return np.asarray(np.where(meets.any(axis=1), cheapest, best))


def lambda_grid(quality: np.ndarray, cost: np.ndarray, n: int = 80) -> np.ndarray:
    """Trade-off values where choices change: quantiles of per-prompt breakpoints, 0, inf.

    A breakpoint is ``(q_best - q_j) / (c_best - c_j)``, the ``lam`` at which the choice
    would switch from the prompt's highest-predicted-quality model to model ``j``. For a
    cheaper ``j`` it is positive (spend less). For a dearer ``j`` it is negative: below it
    the router buys the dearer model although it predicts it no better, which completes the
    sweep up to "always the most expensive model". With two models this makes the sweep
    a full threshold sweep over the predicted advantage, as in RouteLLM.
    """
    best = np.argmax(quality, axis=1)
    rows = np.arange(len(quality))
    dq = quality[rows, best][:, None] - quality
    dc = cost[rows, best][:, None] - cost
    found = [np.array([0.0, np.inf])]
    for ok in ((dc > 0) & (dq >= 0), (dc < 0) & (dq >= 0)):
        ratios = dq[ok] / dc[ok]
        ratios = ratios[np.isfinite(ratios) & (ratios != 0)]
        if ratios.size:
            # just past each breakpoint, so the switch has happened there
            found.append(
                np.quantile(ratios, np.linspace(0, 1, n)) * (1 - 1e-9 * np.sign(ratios[0]))
            )
    return np.unique(np.concatenate(found))
