"""Calibration: choose the trade-off (``lam``, and ``quality_target`` tau) that meets a target
on held-out data, and report what was achieved there with a 95% bootstrap interval.

Targets:
- ``quality:0.95``: mean quality >= 0.95 x the best single model's, at the least cost;
- ``quality-abs:0.8``: mean quality >= 0.8, at the least cost;
- ``cost-share:0.3``: mean cost <= 0.3 x the best single model's, at the highest quality.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from crossroads.eval.metrics import best_single
from crossroads.routers.base import Outcomes, Router
from crossroads.routers.objectives import lambda_grid, select

KINDS = ("quality", "quality-abs", "cost-share")


@dataclass(frozen=True)
class Target:
    """A parsed calibration target."""

    kind: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Target:
        """``"quality:0.95"`` -> ``Target("quality", 0.95)``."""
        kind, _, raw = text.partition(":")
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if kind not in KINDS or not np.isfinite(value) or value <= 0:
            raise ValueError(
                f"bad calibration target {text!r}: use quality:<share of best single, e.g. 0.95>, "
                "quality-abs:<mean quality>, or cost-share:<share of best single's cost, e.g. 0.3>"
            )
        return cls(kind, value)


def _pick(costs: np.ndarray, quals: np.ndarray, target: Target, q_ref: float, c_ref: float) -> int:
    if target.kind == "cost-share":
        ok = costs <= target.value * c_ref + 1e-15
        if not ok.any():
            return int(np.argmin(costs))
        return int(np.flatnonzero(ok)[np.argmax(quals[ok])])
    goal = target.value * q_ref if target.kind == "quality" else target.value
    ok = quals >= goal - 1e-12
    if not ok.any():
        return int(np.argmax(quals))
    return int(np.flatnonzero(ok)[np.argmin(costs[ok])])


def calibrate(
    router: Router,
    features: Any,
    outcomes: Outcomes,
    target: str | Target,
    *,
    split: str = "val",
    n_boot: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """Choose ``lam`` and ``quality_target`` meeting ``target`` on (features, outcomes).

    Returns the calibration dict stored in artifacts: the chosen values, what they achieve
    on this data (mean quality, mean cost, cost share of the best single model) with 95%
    bootstrap intervals, and where that data came from (``split``).
    """
    target = Target.parse(target) if isinstance(target, str) else target
    pred_q = router.predict(features)
    pred_c = router.predict_cost(features)
    q = np.where(np.isnan(outcomes.quality), np.nanmean(outcomes.quality, axis=0), outcomes.quality)
    assert outcomes.cost is not None
    c = outcomes.cost
    best = best_single(q, c)
    q_ref, c_ref = float(q[:, best].mean()), float(c[:, best].mean())
    rows = np.arange(len(q))

    def realised(choice: np.ndarray) -> tuple[float, float]:
        return float(q[rows, choice].mean()), float(c[rows, choice].mean())

    lambdas = lambda_grid(pred_q, pred_c, n=200)
    lam_choices = [select(pred_q, pred_c, lam=lam) for lam in lambdas]
    lam_pts = np.array([realised(ch) for ch in lam_choices])
    i = _pick(lam_pts[:, 1], lam_pts[:, 0], target, q_ref, c_ref)
    taus = np.unique(np.quantile(pred_q, np.linspace(0, 1, 200)))
    tau_pts = np.array([realised(select(pred_q, pred_c, quality_target=t)) for t in taus])
    j = _pick(tau_pts[:, 1], tau_pts[:, 0], target, q_ref, c_ref)

    chosen = lam_choices[i]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(q), len(q))
        cq, cc = q[idx, chosen[idx]].mean(), c[idx, chosen[idx]].mean()
        draws.append((cq, cc, cc / max(c[idx, best].mean(), 1e-300)))
    lo, hi = np.percentile(np.array(draws), [2.5, 97.5], axis=0)
    achieved_q, achieved_c = lam_pts[i]
    return {
        "target": f"{target.kind}:{target.value}",
        "lambda": float(lambdas[i]),
        "quality_target": float(taus[j]),
        "split": split,
        "n_prompts": int(len(q)),
        "best_single": router.models_[best],
        "best_single_quality": q_ref,
        "best_single_cost": c_ref,
        "achieved": {
            "quality": float(achieved_q),
            "cost": float(achieved_c),
            "cost_share": float(achieved_c / c_ref) if c_ref > 0 else float("nan"),
            "quality_share": float(achieved_q / q_ref) if q_ref > 0 else float("nan"),
        },
        "ci95": {
            "quality": [float(lo[0]), float(hi[0])],
            "cost": [float(lo[1]), float(hi[1])],
            "cost_share": [float(lo[2]), float(hi[2])],
        },
        "tau_achieved": {"quality": float(tau_pts[j, 0]), "cost": float(tau_pts[j, 1])},
    }
