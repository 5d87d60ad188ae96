"""Calibration: choose the trade-off (``lam``, and ``quality_target`` tau) of a router, or
the thresholds of a cascade plan (:func:`calibrate_plan`), that meet a target on held-out
data, and report what was achieved there with a 95% bootstrap interval.

Targets:
- ``quality:0.95``: mean quality >= 0.95 x the best single model's, at the least cost;
- ``quality-abs:0.8``: mean quality >= 0.8, at the least cost;
- ``cost-share:0.3``: mean cost <= 0.3 x the best single model's, at the highest quality.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
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


GRID_BUDGET = 20_000  # combinations of plan thresholds tried at most


def calibrate_plan(
    config: str | Path,
    data: str | Path,
    target: str | Target,
    *,
    decision: str | None = None,
    model_map: dict[str, str] | None = None,
    tasks: str | None = None,
    split: str = "val",
    held_out: str = "test",
    seed: int = 0,
    n_boot: int = 500,
) -> dict[str, Any]:
    """Choose the thresholds of a decision's cascade plan (every verifier ``threshold`` and
    free-text agreement ``similarity`` of its stages) meeting ``target`` on ``split`` of
    ``data``, replaying its stored responses (:mod:`crossroads.plans.replay`); then report
    what they give on ``held_out``, which chooses nothing.

    ``model_map``: plan model name -> dataset model key (default: the model's
    ``upstream_model``, else its name). Returns the chosen values by path, the calibrated
    ``plan`` (a config mapping to paste) and both splits' quality and cost against the best
    single model of the plan (chosen on ``split``).
    """
    from crossroads.config import load_config
    from crossroads.eval.cascades import _with_responses
    from crossroads.eval.datasets import split_indices
    from crossroads.plans import replay

    target = Target.parse(target) if isinstance(target, str) else target
    if split == held_out or split == "test":
        raise ValueError(
            f"calibrating on the {split} split would leak it into the plan; use val (default)"
        )
    cfg = load_config(config)
    name, plan, where = _cascade_of(cfg, decision)
    replay.check_replayable(plan)
    names = list(dict.fromkeys(m for s in plan.stages for m in s.models))
    keys = {m: _dataset_key(cfg, m, model_map or {}) for m in names}
    ds, texts = _with_responses(data, list(dict.fromkeys(keys.values())), tasks)
    assert ds.prompts is not None and ds.outcomes.cost is not None
    parts = split_indices(ds, seed=seed)
    seen = _verifier_training_ids(plan)
    kept = {s: rows[~np.isin(ds.prompt_ids[rows], list(seen))] for s, rows in parts.items()}
    sources = _StoredSource(ds, texts, keys)
    cal, test = sources.answers(kept[split]), sources.answers(kept[held_out])

    dials = replay.knobs(plan)
    per_knob = max(3, min(201, int(GRID_BUDGET ** (1 / max(len(dials), 1)))))
    for knob in dials:
        knob.grid = replay.knob_grid(knob, replay.knob_scores(plan, knob, cal), per_knob)
    settings = _stage_settings(plan, dials)
    options = [
        [replay.stage_outcome(stage, cal, s) for s in settings[i]]
        for i, stage in enumerate(plan.stages[:-1])
    ]
    points, shares, combos = replay.cascade_points(plan, cal, options)
    q = np.stack([cal.quality[m] for m in names], 1)
    c = np.stack([cal.cost[m] for m in names], 1)
    best = names[best_single(q, c)]
    ref = (float(cal.quality[best].mean()), float(cal.cost[best].mean()))
    pick = _pick(points[:, 0], points[:, 1], target, ref[0], ref[1])
    chosen = {i: settings[i][k] for i, k in enumerate(combos[pick])}
    values = {k.path: chosen[k.stage][k.rule] for k in dials}

    fixed = [[replay.stage_outcome(s, test, chosen[i])] for i, s in enumerate(plan.stages[:-1])]
    test_points, test_shares, _ = replay.cascade_points(plan, test, fixed)
    test_ref = (float(test.quality[best].mean()), float(test.cost[best].mean()))
    goal_met = _meets(target, test_points[0], test_ref)
    return {
        "target": f"{target.kind}:{target.value}",
        "decision": name,
        "dataset": ds.name + (f" ({tasks}*)" if tasks else ""),
        "models": keys,
        "split": split,
        "n_prompts": int(len(kept[split])),
        "left_out_verifier_training_rows": int(
            sum(len(parts[s]) - len(kept[s]) for s in (split, held_out))
        ),
        "best_single": best,
        "thresholds": values,
        "grid": {k.path: len(k.grid) for k in dials},
        "achieved": _shares(points[pick], shares[pick], ref),
        held_out: {
            **_shares(test_points[0], test_shares[0], test_ref),
            "n_prompts": int(len(kept[held_out])),
            "meets_target": goal_met,
            "ci95": _bootstrap(plan, test, chosen, best, n_boot, seed),
        },
        "plan": {where: _with_values(plan, values).model_dump(mode="json", exclude_defaults=True)},
    }


def _cascade_of(cfg: Any, decision: str | None) -> tuple[str, Any, str]:
    """The decision's cascade plan (or the cascade behind its cache) and its config path."""
    from crossroads.config.plans import CachePlan, CascadePlan

    owners = [*cfg.decisions, cfg.default_decision]
    found = []
    for d in owners:
        plan, where = d.plan, "plan"
        if isinstance(plan, CachePlan):
            plan, where = plan.then, "plan.then"
        if isinstance(plan, CascadePlan) and decision in (None, d.name):
            found.append((d.name, plan, where))
    if len(found) != 1:
        cascades = [n for n, _, _ in found] if decision is None else []
        raise ValueError(
            f"decision {decision!r} has no cascade plan"
            if decision is not None
            else "name the decision to calibrate with --decision: cascades are in "
            + (", ".join(cascades) or "no decision")
        )
    return found[0]


def _dataset_key(cfg: Any, model: str, model_map: dict[str, str]) -> str:
    if model in model_map:
        return model_map[model]
    upstream_model = cfg.model(model).upstream_model
    return upstream_model or model


def _verifier_training_ids(plan: Any) -> set[str]:
    """The prompt ids the plan's verifiers were fitted on (never calibrated or reported on)."""
    from crossroads.config.plans import VerifierAccept
    from crossroads.plans.verifier import load_verifier

    seen: set[str] = set()
    for stage in plan.stages:
        for rule in stage.accept:
            if isinstance(rule, VerifierAccept):
                seen |= set(getattr(load_verifier(rule.verifier), "train_ids_", ()))
    return seen


class _StoredSource:
    """A dataset's stored answers, scores and costs under the plan's model names; answer
    embeddings and verifier scores computed once over every row, then sliced."""

    def __init__(self, ds: Any, texts: dict[str, list[str]], keys: dict[str, str]) -> None:
        self.ds, self.texts, self.keys = ds, texts, keys
        self._vectors: dict[str, np.ndarray] = {}
        self._scores: dict[tuple[str, str], np.ndarray] = {}

    def vectors(self, model: str) -> np.ndarray:
        from crossroads.embeddings import EmbeddingCache

        if model not in self._vectors:
            key = self.keys[model]
            self._vectors[model] = EmbeddingCache(f"{self.ds.name}.responses.{key}").encode(
                [t[:2000] for t in self.texts[key]], progress=True
            )
        return self._vectors[model]

    def scores(self, artifact: str, model: str) -> np.ndarray:
        from crossroads.embeddings import EmbeddingCache
        from crossroads.plans.verifier import load_verifier

        if (artifact, model) not in self._scores:
            verifier = load_verifier(artifact)
            answers = self.texts[self.keys[model]]
            vectors = None
            if verifier.embed:
                prompts = EmbeddingCache(self.ds.name).encode(self.ds.prompts, progress=True)
                vectors = (prompts, self.vectors(model))
            x = verifier.features(self.ds.prompts, answers, vectors=vectors)
            self._scores[artifact, model] = verifier.predict(x)
        return self._scores[artifact, model]

    def answers(self, rows: np.ndarray) -> Any:
        from crossroads.plans.replay import StoredAnswers

        cols = {k: self.ds.outcomes.models.index(k) for k in self.keys.values()}
        assert self.ds.outcomes.cost is not None
        return StoredAnswers(
            prompts=[self.ds.prompts[i] for i in rows],
            texts={m: [self.texts[k][i] for i in rows] for m, k in self.keys.items()},
            quality={m: self.ds.outcomes.quality[rows, cols[k]] for m, k in self.keys.items()},
            cost={m: self.ds.outcomes.cost[rows, cols[k]] for m, k in self.keys.items()},
            vectors=lambda m: self.vectors(m)[rows],
            verifier_scores=lambda a, m: self.scores(a, m)[rows],
        )


def _stage_settings(plan: Any, dials: list[Any]) -> list[list[dict[int, float]]]:
    """Per stage but the last, every combination of its knobs' values (rule index -> value)."""
    import itertools

    out = []
    for i in range(len(plan.stages) - 1):
        mine = [k for k in dials if k.stage == i]
        out.append(
            [
                {k.rule: v for k, v in zip(mine, values, strict=True)}
                for values in itertools.product(*(k.grid for k in mine))
            ]
        )
    return out


def _shares(point: np.ndarray, shares: np.ndarray, ref: tuple[float, float]) -> dict[str, Any]:
    cost, quality = float(point[0]), float(point[1])
    return {
        "quality": quality,
        "cost": cost,
        "quality_share": quality / ref[0] if ref[0] > 0 else float("nan"),
        "cost_share": cost / ref[1] if ref[1] > 0 else float("nan"),
        "answered_by_stage": [round(float(s), 4) for s in shares],
    }


def _meets(target: Target, point: np.ndarray, ref: tuple[float, float]) -> bool:
    cost, quality = float(point[0]), float(point[1])
    if target.kind == "cost-share":
        return cost <= target.value * ref[1] + 1e-15
    goal = target.value * ref[0] if target.kind == "quality" else target.value
    return quality >= goal - 1e-12


def _bootstrap(
    plan: Any, data: Any, chosen: dict[int, dict[int, float]], best: str, n_boot: int, seed: int
) -> dict[str, list[float]]:
    """95% intervals of the quality share and cost share over resampled prompts."""
    from crossroads.plans import replay

    outcomes = [replay.stage_outcome(s, data, chosen[i]) for i, s in enumerate(plan.stages[:-1])]
    quality, cost, _ = replay.serve_rows(plan, data, outcomes)
    n = len(quality)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        draws.append(
            (
                quality[idx].mean() / max(data.quality[best][idx].mean(), 1e-300),
                cost[idx].mean() / max(data.cost[best][idx].mean(), 1e-300),
            )
        )
    lo, hi = np.percentile(np.array(draws), [2.5, 97.5], axis=0)
    return {
        "quality_share": [float(lo[0]), float(hi[0])],
        "cost_share": [float(lo[1]), float(hi[1])],
    }


def _with_values(plan: Any, values: dict[str, float]) -> Any:
    """The plan with ``values`` (by path) set on its rules."""
    stages = []
    for i, stage in enumerate(plan.stages):
        rules = []
        for j, rule in enumerate(stage.accept):
            update = {
                path.rsplit(".", 1)[1]: v
                for path, v in values.items()
                if path.startswith(f"stages[{i}].accept[{j}].")
            }
            rules.append(rule.model_copy(update=update) if update else rule)
        stages.append(stage.model_copy(update={"accept": rules}))
    return plan.model_copy(update={"stages": stages})
