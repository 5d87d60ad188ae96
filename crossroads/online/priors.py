"""Prior mean quality per model, so a learner does not start cold.

In order: the decision's ``priors``; an offline router artifact (``warm_start``: the
router's predicted mean quality per model, i.e. its mean over the prompts it was fitted
on); and for a model neither knows, when ``profile_prior`` is on, a guess from its declared
price: quality regressed on ``log(price)`` over the models that have a prior (their mean
when fewer than two prices differ), clipped to their range, worth half the strength.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crossroads.config import ModelConfig
from crossroads.exceptions import ConfigError, CrossroadsError


@dataclass(slots=True)
class Prior:
    """A model's prior mean quality, worth ``strength`` observations; ``source`` says why."""

    quality: float
    strength: float
    source: str  # "config", "warm_start", "profile" or "none"


@dataclass(slots=True)
class WarmStartInfo:
    """What an artifact gives: mean quality per model (gateway names), its calibrated λ."""

    quality: dict[str, float]
    lam: float | None


def read_artifact(path: str, model_map: dict[str, str]) -> WarmStartInfo:
    """The mean predicted quality per model of the router artifact at ``path``."""
    from crossroads.routers.artifact import load_artifact

    try:
        payload = load_artifact(path)
    except CrossroadsError as exc:
        raise ConfigError([("selection.warm_start.router", str(exc))]) from exc
    router = payload["router"]
    names = [model_map.get(m, m) for m in router.models_]
    means = np.asarray(router.quality_mean_, dtype=np.float64)
    lam = (payload.get("calibration") or {}).get("lambda")
    return WarmStartInfo(
        {n: float(q) for n, q in zip(names, means, strict=True)},
        None if lam is None else float(lam),
    )


def price_of(model: ModelConfig | None) -> float | None:
    """A model's declared price per 1M tokens (input + output), None if it declares none."""
    if model is None:
        return None
    total = model.price.input + model.price.output
    return total if total > 0 else None


def resolve_priors(
    models: Sequence[str],
    profiles: dict[str, ModelConfig],
    selection: Any,
    warm: WarmStartInfo | None,
) -> list[Prior]:
    """The prior of each of ``models`` (see the module docstring)."""
    strength = float(selection.prior_strength)
    known: dict[str, Prior] = {}
    for m in models:
        if m in selection.priors:
            known[m] = Prior(float(selection.priors[m]), strength, "config")
        elif warm is not None and m in warm.quality:
            known[m] = Prior(warm.quality[m], float(selection.warm_start.strength), "warm_start")
    out = []
    guess = _price_fit(known, profiles) if selection.profile_prior and known else None
    for m in models:
        if m in known:
            out.append(known[m])
        elif guess is not None:
            out.append(Prior(guess(price_of(profiles.get(m))), strength / 2, "profile"))
        else:
            out.append(Prior(0.0, 0.0, "none"))
    return out


def _price_fit(known: dict[str, Prior], profiles: dict[str, ModelConfig]) -> Any:
    qualities = [p.quality for p in known.values()]
    lo, hi, mean = min(qualities), max(qualities), float(np.mean(qualities))
    points = [
        (math.log(price), p.quality)
        for m, p in known.items()
        if (price := price_of(profiles.get(m))) is not None
    ]
    xs = np.array([x for x, _ in points])
    if len(points) < 2 or np.ptp(xs) == 0:
        return lambda price: mean
    slope, intercept = np.polyfit(xs, [q for _, q in points], 1)

    def guess(price: float | None) -> float:
        if price is None:
            return mean
        return float(np.clip(intercept + slope * math.log(price), lo, hi))

    return guess
