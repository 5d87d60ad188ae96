"""Cost-quality metrics of routers (definitions with formulas in docs/metrics.md).

A router swept over its trade-off gives operating points ``(mean cost, mean quality)``. Mixing
two operating points at random reaches any point between them, so what a router can achieve
is the upper convex hull of its points, made non-decreasing (spending more never has to hurt).
- AIQ (RouterBench): mean of that hull over the cost range [c_lo, c_hi] (0 below the
  router's cheapest point).
- APGR, CPT(x) (RouteLLM, two models): performance gap recovered as the share of calls to the
  strong model goes from 0 to 1, averaged; the smallest share reaching x of the gap.
- quality at the best single model's cost; cost (as a share of it) at its quality.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def operating_points(quality: np.ndarray, cost: np.ndarray, choices: np.ndarray) -> np.ndarray:
    """``(L, 2)`` mean (cost, quality) of each row of ``choices`` (``(L, n)`` model indices)."""
    rows = np.arange(quality.shape[0])
    q = quality[rows, choices]
    c = cost[rows, choices]
    return np.stack([c.mean(axis=1), q.mean(axis=1)], axis=1)


def upper_hull(points: np.ndarray) -> np.ndarray:
    """Non-decreasing upper convex hull of ``(cost, quality)`` points, sorted by cost."""
    pts = np.asarray(points, dtype=np.float64)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        return pts.reshape(0, 2)
    pts = pts[np.lexsort((-pts[:, 1], pts[:, 0]))]
    hull: list[np.ndarray] = []
    for p in pts:
        if hull and p[0] == hull[-1][0]:
            continue  # same cost, lower or equal quality
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            # pop the middle point if it lies on or below the chord from hull[-2] to p
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    out = np.array(hull)
    top = int(np.argmax(out[:, 1]))
    return out[: top + 1]  # beyond the best point the hull is flat


def hull_quality(hull: np.ndarray, c: float | np.ndarray) -> np.ndarray:
    """Best quality reachable at mean cost ``c``: 0 below the cheapest point, flat after the best."""
    c = np.asarray(c, dtype=np.float64)
    if len(hull) == 0:
        return np.zeros_like(c)
    val = np.interp(c, hull[:, 0], hull[:, 1])
    # tolerance: the same mean cost summed in another order must not fall "below" the hull
    return np.where(c < hull[0, 0] - 1e-9 * abs(hull[0, 0]), 0.0, val)


def aiq(points: np.ndarray, c_lo: float, c_hi: float) -> float:
    """Average improvement in quality: mean of the hull over ``[c_lo, c_hi]`` (exact)."""
    hull = upper_hull(points)
    if len(hull) == 0:
        return 0.0
    if c_hi <= c_lo:  # every model costs the same: the hull's value at that cost
        return float(hull_quality(hull, c_hi))
    start = max(c_lo, hull[0, 0])
    if start >= c_hi:
        return 0.0
    xs = np.concatenate([[start, c_hi], hull[(hull[:, 0] > start) & (hull[:, 0] < c_hi), 0]])
    xs = np.sort(xs)
    return float(np.trapezoid(hull_quality(hull, xs), xs) / (c_hi - c_lo))


def cost_at_quality(points: np.ndarray, target: float) -> float:
    """Least mean cost at which the hull reaches ``target`` quality (``inf`` if never)."""
    hull = upper_hull(points)
    # tolerance: the same mean quality summed in another order must still count as reached
    if len(hull) == 0 or hull[-1, 1] < target - 1e-12:
        return float("inf")
    if hull[0, 1] >= target:
        return float(hull[0, 0])
    return float(np.interp(target, hull[:, 1], hull[:, 0]))


def best_single(quality: np.ndarray, cost: np.ndarray) -> int:
    """Index of the best single model: highest mean quality, then lowest mean cost."""
    q = quality.mean(axis=0)
    c = cost.mean(axis=0)
    return int(np.lexsort((c, -np.round(q, 12)))[0])


def oracle_choices(quality: np.ndarray, cost: np.ndarray, lambdas: np.ndarray) -> np.ndarray:
    """The oracle's choice per prompt for each ``lam``: it knows the true outcomes."""
    from crossroads.routers.objectives import select

    return np.stack([select(quality, cost, lam=lam) for lam in lambdas])


def pgr_curve(
    quality: np.ndarray,
    advantage: np.ndarray,
    strong: int,
    weak: int,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(share of calls to ``strong``, PGR) as prompts go to it in order of ``advantage``.

    PGR = (quality - q_weak) / (q_strong - q_weak), where q_* are the single models' means.
    """
    n = len(advantage)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    order = np.argsort(-advantage, kind="stable")
    gain = (quality[:, strong] - quality[:, weak])[order] * w[order]
    total = w.sum()
    q_weak = (quality[:, weak] * w).sum() / total
    q_strong = (quality[:, strong] * w).sum() / total
    share = np.concatenate([[0.0], np.cumsum(w[order]) / total])
    q = q_weak + np.concatenate([[0.0], np.cumsum(gain)]) / total
    gap = q_strong - q_weak
    pgr = (q - q_weak) / gap if abs(gap) > 1e-12 else np.ones_like(q)
    return share, pgr


def apgr(share: np.ndarray, pgr: np.ndarray) -> float:
    """Average PGR over the share of strong calls, from 0 to 1 (trapezoid rule)."""
    return float(np.trapezoid(pgr, share))


def cpt(share: np.ndarray, pgr: np.ndarray, x: float) -> float:
    """Call-performance threshold: least share of strong calls with PGR >= ``x``."""
    hit = np.flatnonzero(pgr >= x - 1e-12)
    return float(share[hit[0]]) if hit.size else float("nan")


def summarize(
    quality: np.ndarray,
    cost: np.ndarray,
    choices: np.ndarray,
    *,
    advantage: np.ndarray | None = None,
    strong: int | None = None,
    weak: int | None = None,
    weights: np.ndarray | None = None,
    picked: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """Every metric of one router on one (possibly re-weighted, for bootstrap) sample.

    ``picked`` is ``(quality[rows, choices], cost[rows, choices])`` when the caller has it
    already (the bootstrap gathers it once, not once per resample).
    """
    w = np.ones(len(quality)) if weights is None else weights
    total = w.sum()
    if picked is None:
        rows = np.arange(len(quality))
        picked = (quality[rows, choices], cost[rows, choices])
    pts = np.stack([picked[1] @ w / total, picked[0] @ w / total], axis=1)
    single_q = (quality * w[:, None]).sum(0) / total
    single_c = (cost * w[:, None]).sum(0) / total
    best = int(np.lexsort((single_c, -np.round(single_q, 12)))[0])
    c_lo, c_hi = float(single_c.min()), float(single_c.max())
    hull = upper_hull(pts)  # the hull of a hull is itself: compute it once
    out = {
        "aiq": aiq(hull, c_lo, c_hi),
        "max_quality": float(pts[:, 1].max()),
        "quality_at_best_cost": float(hull_quality(hull, single_c[best])),
        "cost_share_at_best_quality": cost_at_quality(hull, single_q[best]) / single_c[best]
        if single_c[best] > 0
        else float("nan"),
    }
    if advantage is not None and strong is not None and weak is not None:
        share, pgr = pgr_curve(quality, advantage, strong, weak, w)
        out["apgr"] = apgr(share, pgr)
        for x in (0.5, 0.8, 0.95):
            out[f"cpt{int(x * 100)}"] = cpt(share, pgr, x)
    return out


def bootstrap(
    quality: np.ndarray,
    cost: np.ndarray,
    choices: np.ndarray,
    *,
    n_boot: int = 200,
    seed: int = 0,
    **kwargs: Any,
) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of ``summarize`` over prompts resampled with replacement."""
    rng = np.random.default_rng(seed)
    n = len(quality)
    # Identical rows of choices give identical points: drop them (no metric changes).
    choices = np.unique(choices, axis=0)
    rows = np.arange(n)
    picked = (quality[rows, choices], cost[rows, choices])
    draws: dict[str, list[float]] = {}
    for _ in range(n_boot):
        weights = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        found = summarize(quality, cost, choices, weights=weights, picked=picked, **kwargs)
        for key, value in found.items():
            draws.setdefault(key, []).append(value)
    return {key: _interval(np.asarray(v, dtype=np.float64)) for key, v in draws.items()}


def _interval(values: np.ndarray) -> tuple[float, float]:
    """2.5th and 97.5th percentiles by rank (``inf`` = "never reached" is a valid draw)."""
    values = np.sort(values[~np.isnan(values)])
    if values.size == 0:
        return (float("nan"), float("nan"))
    last = values.size - 1
    return float(values[int(np.floor(0.025 * last))]), float(values[int(np.ceil(0.975 * last))])
