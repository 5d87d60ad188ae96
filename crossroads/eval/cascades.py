"""Offline evaluation of cascades on stored responses, beside prompt-only routers.

A cascade ``cheap → strong`` answers with the cheap model's stored response when its
acceptance rule says yes, else pays for the strong model too. On a dataset that stores each
model's response (``responses.parquet``), every rule can be replayed per prompt:

- ``checks``: the simple checks of :mod:`crossroads.plans.checks` (one operating point);
- ``verifier``: the learned verifier (:mod:`crossroads.plans.verifier`), fitted on the
  train split; its threshold swept on test gives the curve, and the threshold chosen on
  the validation split for a target (``quality:0.95``) gives the deployable point;
- ``agreement`` (two cheap models): both are paid for; accept when their normalised final
  answers agree (or, for free text, their MiniLM cosine reaches a threshold, swept);
- ``oracle``: accept exactly when the cheap answer is good (the ceiling of any rule).

Cost of a prompt = every cheap call + the strong call when rejected; quality = the served
answer's score. Points are compared by AIQ over the single models' cost range (as in
:mod:`crossroads.eval.metrics`) with the prompt-only routers of :func:`evaluate` fitted on
the same rows and split. Nothing is tuned on test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossroads.eval import metrics
from crossroads.eval.calibrate import Target
from crossroads.eval.datasets import RoutingDataset, load_dataset, split_indices


@dataclass
class CascadeCurve:
    """One cascade rule on the test split: its points, AIQ and calibrated point."""

    name: str
    points: np.ndarray  # (L, 2) mean cost, mean quality
    aiq: float
    accept_share: np.ndarray | None = None
    calibrated: dict[str, float] = field(default_factory=dict)  # threshold, quality, cost_share
    auc: float | None = None  # how well the rule's score predicts "the cheap answer is good"


@dataclass
class CascadeReport:
    """Cascades and prompt-only routers on the same rows and split."""

    dataset: str
    cheap: list[str]
    strong: str
    rows: int
    split_sizes: dict[str, int]
    singles: dict[str, tuple[float, float]]
    curves: list[CascadeCurve]
    routers: dict[str, float]  # prompt-only router / baseline -> test AIQ
    router_auc: float | None  # best prompt-only substitution AUC
    selected_router: str | None
    target: str
    good_at: float
    note: str = ""


def responses_for(path: str | Path, ds: RoutingDataset, models: list[str]) -> dict[str, list[str]]:
    """Each model's stored response per prompt of ``ds`` (``""`` where none)."""
    import pandas as pd

    frame = pd.read_parquet(Path(path) / "responses.parquet")
    frame = frame.set_index(frame["prompt_id"].astype(str)).reindex(ds.prompt_ids)
    out = {}
    for m in models:
        col = f"response__{m}"
        if col not in frame.columns:
            raise ValueError(f"{path} stores no responses of {m!r}")
        out[m] = [r if isinstance(r, str) else "" for r in frame[col].tolist()]
    return out


def _with_responses(
    data: str | Path, models: list[str], tasks: str | None
) -> tuple[RoutingDataset, dict[str, list[str]]]:
    """The rows of ``data`` where every model has a score and a stored response (and the
    task starts with ``tasks``), restricted to ``models``, with those responses."""
    full = load_dataset(data)
    answers = responses_for(data, full, models)
    idx = [full.outcomes.models.index(m) for m in models]
    keep = np.isfinite(full.outcomes.quality[:, idx]).all(axis=1)
    for m in models:
        keep &= np.array([bool(a.strip()) for a in answers[m]])
    if tasks:
        keep &= np.char.startswith(full.tasks.astype(str), tasks)
    rows = np.flatnonzero(keep)
    if not len(rows):
        raise ValueError(
            f"no prompt of {data} has a score and a response from every one of {models}"
        )
    return _restrict(full, rows, models), {m: [answers[m][i] for i in rows] for m in models}


VERIFIER_GRID: list[tuple[bool, float]] = [(e, c) for e in (False, True) for c in (0.01, 0.1, 1.0)]


def choose_verifier(
    prompts: list[str],
    answers: list[str],
    vectors: tuple[np.ndarray, np.ndarray] | None,
    good: np.ndarray,
    train: np.ndarray,
    val: np.ndarray,
    good_at: float,
) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """The verifier (fitted on ``train``) whose settings (embeddings or not, C) give the best
    AUC on ``val``, its feature matrix, and those settings with the validation AUC."""
    from crossroads.eval.predictability import roc_auc
    from crossroads.plans.verifier import Verifier

    hand = Verifier(embed=False).features(prompts, answers)
    full = Verifier(embed=True).features(prompts, answers, vectors=vectors) if vectors else None
    best: tuple[float, Any, np.ndarray, dict[str, Any]] | None = None
    for embed, c in VERIFIER_GRID:
        x = full if embed else hand
        if x is None:
            continue
        params: dict[str, Any] = {"embed": embed, "C": c}
        verifier = Verifier(embed=embed, C=c, good_at=good_at).fit(x[train], good[train])
        auc = (
            float(roc_auc(good[val], verifier.predict(x[val])))
            if len(set(good[val].tolist())) > 1
            else 0.0
        )
        if best is None or auc > best[0]:
            best = (auc, verifier, x, {**params, "val_auc": round(auc, 4)})
    assert best is not None
    return best[1], best[2], best[3]


def fit_verifier_artifact(
    data: str | Path,
    model: str,
    strong: str,
    out: str | Path,
    *,
    target: str = "quality:0.95",
    good_at: float = 0.5,
    seed: int = 0,
    embed: bool = True,
    tasks: str | None = None,
) -> dict[str, Any]:
    """Fit a verifier of ``model``'s stored answers on the train split, choose its threshold
    on the validation split so that the cascade ``model → strong`` meets ``target``, and
    save it to ``out``. Returns what calibration found (on validation)."""
    from crossroads.embeddings import EmbeddingCache
    from crossroads.eval.calibrate import _pick

    goal = Target.parse(target)
    ds, texts = _with_responses(data, [model, strong], tasks)
    assert ds.prompts is not None and ds.outcomes.cost is not None
    split = split_indices(ds, seed=seed)
    train, val = split["train"], split["val"]
    q, c = ds.outcomes.quality, ds.outcomes.cost
    vectors = None
    if embed:
        vectors = (
            EmbeddingCache(ds.name).encode(ds.prompts, progress=True),
            EmbeddingCache(f"{ds.name}.responses.{model}").encode(
                [t[:2000] for t in texts[model]], progress=True
            ),
        )
    verifier, x, params = choose_verifier(
        ds.prompts, texts[model], vectors, (q[:, 0] >= good_at).astype(int), train, val, good_at
    )
    p = verifier.predict(x[val])
    grid = np.unique(np.concatenate([np.quantile(p, np.linspace(0, 1, 201)), [1.01]]))
    costs = np.array([(c[val, 0] + np.where(p >= t, 0.0, c[val, 1])).mean() for t in grid])
    quals = np.array([np.where(p >= t, q[val, 0], q[val, 1]).mean() for t in grid])
    best = metrics.best_single(q[val], c[val])
    pick = _pick(costs, quals, goal, float(q[val, best].mean()), float(c[val, best].mean()))
    verifier.threshold = float(grid[pick])
    # So that calibrating a plan never scores the verifier on the answers it learned from.
    verifier.train_ids_ = [str(i) for i in ds.prompt_ids[train]]
    verifier.save(out)
    return {
        "threshold": verifier.threshold,
        "target": target,
        "val_quality_share": float(quals[pick] / q[val, best].mean()),
        "val_cost_share": float(costs[pick] / c[val, best].mean()),
        "val_accept_share": float((p >= verifier.threshold).mean()),
        "train_rows": int(len(train)),
        **params,
    }


def _restrict(ds: RoutingDataset, rows: np.ndarray, models: list[str]) -> RoutingDataset:
    cols = [ds.outcomes.models.index(m) for m in models]
    out = ds.outcomes
    from crossroads.routers.base import Outcomes

    assert out.cost is not None
    return RoutingDataset(
        name=ds.name,
        prompt_ids=ds.prompt_ids[rows],
        prompts=[ds.prompts[i] for i in rows] if ds.prompts is not None else None,
        tasks=ds.tasks[rows],
        splits=ds.splits[rows],
        outcomes=Outcomes(
            models,
            out.quality[np.ix_(rows, np.array(cols))],
            out.cost[np.ix_(rows, np.array(cols))],
        ),
        cost_unit=ds.cost_unit,
        cost_note=ds.cost_note,
        model_info={m: ds.model_info.get(m, {}) for m in models},
    )


def _curve(
    name: str,
    score: np.ndarray,
    q_cheap: np.ndarray,
    q_strong: np.ndarray,
    c_paid: np.ndarray,
    c_strong: np.ndarray,
    c_range: tuple[float, float],
) -> CascadeCurve:
    """Accept where ``score`` >= t, for every t: the cascade's points."""
    thresholds = np.unique(
        np.concatenate([[-np.inf, np.inf], np.quantile(score, np.linspace(0, 1, 101))])
    )
    pts, shares = [], []
    for t in thresholds:
        accept = score >= t
        q = np.where(accept, q_cheap, q_strong)
        c = c_paid + np.where(accept, 0.0, c_strong)
        pts.append((c.mean(), q.mean()))
        shares.append(accept.mean())
    points = np.array(pts)
    return CascadeCurve(name, points, metrics.aiq(points, *c_range), np.array(shares))


def _calibrated(
    score_val: np.ndarray,
    q_val: tuple[np.ndarray, np.ndarray],
    c_val: tuple[np.ndarray, np.ndarray],
    ref_val: tuple[float, float],
    score_test: np.ndarray,
    q_test: tuple[np.ndarray, np.ndarray],
    c_test: tuple[np.ndarray, np.ndarray],
    ref_test: tuple[float, float],
    target: Target,
) -> dict[str, float]:
    """The threshold meeting ``target`` on validation, and what it gives on test."""
    from crossroads.eval.calibrate import _pick

    grid = np.unique(
        np.concatenate([[-np.inf, np.inf], np.quantile(score_val, np.linspace(0, 1, 201))])
    )

    def point(
        score: np.ndarray,
        q: tuple[np.ndarray, np.ndarray],
        c: tuple[np.ndarray, np.ndarray],
        t: float,
    ) -> tuple[float, float]:
        accept = score >= t
        return float((c[0] + np.where(accept, 0.0, c[1])).mean()), float(
            np.where(accept, q[0], q[1]).mean()
        )

    val_pts = np.array([point(score_val, q_val, c_val, t) for t in grid])
    best = _pick(val_pts[:, 0], val_pts[:, 1], target, ref_val[1], ref_val[0])
    threshold = float(grid[best])
    cost, quality = point(score_test, q_test, c_test, threshold)
    return {
        "threshold": threshold,
        "val_quality_share": val_pts[best, 1] / ref_val[1],
        "test_quality": quality,
        "test_quality_share": quality / ref_test[1],
        "test_cost_share": cost / ref_test[0],
        "test_accept_share": float((score_test >= threshold).mean()),
    }


def evaluate_cascades(
    data: str | Path,
    cheap: list[str],
    strong: str,
    *,
    seed: int = 0,
    good_at: float = 0.5,
    target: str = "quality:0.95",
    routers: list[str] | None = None,
    embed: bool = True,
    n_boot: int = 50,
    tasks: str | None = None,
    features: np.ndarray | None = None,
) -> CascadeReport:
    """Replay cascades ``cheap[0] (, cheap[1]) → strong`` on the stored responses of ``data``
    and fit prompt-only ``routers`` on the same rows (``tasks``: keep rows whose task starts
    with this prefix). ``features``: prompt vectors of the kept rows for the routers
    (default: cached MiniLM embeddings)."""
    from crossroads.eval.runner import evaluate
    from crossroads.plans.answers import final_answer
    from crossroads.plans.checks import failed_check
    from crossroads.types import Request

    goal = Target.parse(target)
    models = [*cheap, strong]
    ds, texts = _with_responses(data, models, tasks)
    assert ds.prompts is not None
    split = split_indices(ds, seed=seed)
    train, val, test = split["train"], split["val"], split["test"]
    quality, cost = ds.outcomes.quality, ds.outcomes.cost
    assert cost is not None

    from crossroads.embeddings import EmbeddingCache

    prompt_vec = (
        features
        if features is not None
        else EmbeddingCache(ds.name).encode(ds.prompts, progress=True)
    )
    result = evaluate(
        ds,
        routers or ["mean", "knn", "mlp", "linear", "logistic"],
        seed=seed,
        n_boot=n_boot,
        features=prompt_vec,
    )
    router_aiq = {r.name: r.metrics["aiq"] for r in result.results if r.kind != "single"}
    aucs = [r.metrics.get("subst_auc") for r in result.results if r.kind == "learned"]
    router_auc = max((a for a in aucs if a is not None and np.isfinite(a)), default=None)

    q_s, c_s = quality[:, -1], cost[:, -1]
    single_c, single_q = cost[test].mean(0), quality[test].mean(0)
    c_range = (float(single_c.min()), float(single_c.max()))
    # The reference model (the best single) is chosen on train: test outcomes choose nothing.
    best = metrics.best_single(quality[train], cost[train])
    ref_test = (float(single_c[best]), float(single_q[best]))
    ref_val = (float(cost[val, best].mean()), float(quality[val, best].mean()))
    curves: list[CascadeCurve] = []
    q0, c0 = quality[:, 0], cost[:, 0]
    good = (q0 >= good_at).astype(int)

    def add(
        name: str, score: np.ndarray, paid: np.ndarray, served: np.ndarray, fit_free: bool = False
    ) -> None:
        curve = _curve(name, score[test], served[test], q_s[test], paid[test], c_s[test], c_range)
        curve.calibrated = _calibrated(
            score[val],
            (served[val], q_s[val]),
            (paid[val], c_s[val]),
            ref_val,
            score[test],
            (served[test], q_s[test]),
            (paid[test], c_s[test]),
            ref_test,
            goal,
        )
        labels = (served[test] >= good_at).astype(int)
        if 0 < labels.sum() < len(labels) and not fit_free:
            from crossroads.eval.predictability import roc_auc

            curve.auc = float(roc_auc(labels, score[test]))
        curves.append(curve)

    empty_request = Request("chat", "-", "openai_chat")
    passed = np.array(
        [
            failed_check(t, [], None, True, empty_request, ["empty", "refusal", "code"]) is None
            for t in texts[cheap[0]]
        ],
        dtype=np.float64,
    )
    add(f"cascade {cheap[0]}→{strong}: checks", passed, c0, q0, fit_free=True)
    sound = np.array(
        [
            failed_check(t, [], None, True, empty_request, ["arithmetic"]) is None
            for t in texts[cheap[0]]
        ],
        dtype=np.float64,
    )
    if (sound < 1).any():
        add(
            f"cascade {cheap[0]}→{strong}: checks + arithmetic",
            passed * sound,
            c0,
            q0,
            fit_free=True,
        )

    vectors = None
    if embed:
        answer_vec = EmbeddingCache(f"{ds.name}.responses.{cheap[0]}").encode(
            [t[:2000] for t in texts[cheap[0]]], progress=True
        )
        vectors = (prompt_vec, answer_vec)
    verifier, x, verifier_params = choose_verifier(
        ds.prompts, texts[cheap[0]], vectors, good, train, val, good_at
    )
    p = verifier.predict(x)
    add(f"cascade {cheap[0]}→{strong}: verifier {verifier_params}", p, c0, q0)
    add(f"cascade {cheap[0]}→{strong}: checks + verifier", np.where(passed > 0, p, -1.0), c0, q0)
    add(
        f"cascade {cheap[0]}→{strong}: oracle acceptance",
        (q0 >= q_s).astype(float) + 0.0,
        c0,
        q0,
        fit_free=True,
    )

    if len(cheap) > 1:
        c1 = cost[:, 1]
        keys = [[final_answer(t) for t in texts[m]] for m in cheap[:2]]
        same = np.array(
            [a is not None and a == b for a, b in zip(*keys, strict=True)], dtype=np.float64
        )
        sim = same
        if embed:
            vec = [
                EmbeddingCache(f"{ds.name}.responses.{m}").encode(
                    [t[:2000] for t in texts[m]], progress=True
                )
                for m in cheap[:2]
            ]
            cosine = (vec[0] * vec[1]).sum(axis=1)
            sim = np.where(
                [a is not None and b is not None for a, b in zip(*keys, strict=True)], same, cosine
            )
        add(f"cascade {cheap[0]}+{cheap[1]}→{strong}: agreement", sim, c0 + c1, q0, fit_free=True)

    return CascadeReport(
        dataset=ds.name + (f" ({tasks}*)" if tasks else ""),
        cheap=list(cheap),
        strong=strong,
        rows=len(ds),
        split_sizes={k: len(v) for k, v in split.items()},
        singles={m: (float(single_c[j]), float(single_q[j])) for j, m in enumerate(models)},
        curves=curves,
        routers=router_aiq,
        router_auc=router_auc,
        selected_router=result.selected,
        target=target,
        good_at=good_at,
    )


def report_markdown(report: CascadeReport) -> str:
    """The report as a markdown section."""
    lines = [
        f"### {report.dataset}: {' / '.join(report.cheap)} → {report.strong}",
        "",
        f"{report.rows} prompts with stored responses; split {report.split_sizes['train']} / "
        f"{report.split_sizes['val']} / {report.split_sizes['test']} (train / val / test). "
        f"'good' = score ≥ {report.good_at:g}. Calibration target `{report.target}` "
        "(threshold chosen on val).",
        "",
        "| model | test mean cost | test mean quality |",
        "|---|---|---|",
    ]
    lines += [f"| single:{m} | {c:.6g} | {q:.3f} |" for m, (c, q) in report.singles.items()]
    lines += [
        "",
        "| policy | test AIQ | AUC (cheap answer good) | calibrated: test quality share / cost share / accepted |",
        "|---|---|---|---|",
    ]
    for c in report.curves:
        cal = c.calibrated
        point = (
            f"{cal['test_quality_share']:.3f} / {cal['test_cost_share']:.3f} / {cal['test_accept_share']:.2f}"
            if cal
            else "–"
        )
        auc = f"{c.auc:.3f}" if c.auc is not None else "–"
        lines.append(f"| {c.name} | {c.aiq:.4f} | {auc} | {point} |")
    for name, value in sorted(report.routers.items(), key=lambda kv: -kv[1]):
        tag = " (selected on val)" if name == report.selected_router else ""
        auc = (
            f"{report.router_auc:.3f} (best router)"
            if name == report.selected_router and report.router_auc
            else "–"
        )
        lines.append(f"| prompt-only: {name}{tag} | {value:.4f} | {auc} | – |")
    return "\n".join(lines) + "\n"
