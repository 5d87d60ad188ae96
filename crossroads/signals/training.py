"""Training and held-out evaluation of the learned signals' heads.

Each ``train_*`` function takes labelled :class:`~crossroads.signals.corpora.Example` rows
and ``embed`` (texts → unit vectors: the MiniLM encoder, or any embedder in tests), picks
the regularisation on the ``val`` split, refits on train + val, and reports on ``test``,
which nothing was tuned on. It returns the :class:`~crossroads.signals.heads.Head` and a
report (plain dict, JSON-ready).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from crossroads.exceptions import CrossroadsError
from crossroads.signals.corpora import Example
from crossroads.signals.heads import ENCODER, Head

if TYPE_CHECKING:
    import numpy as np

Embed = Callable[[list[str]], "np.ndarray"]
C_GRID = (0.25, 1.0, 4.0, 16.0)


def _parts(examples: list[Example], embed: Embed) -> dict[str, tuple[Any, list[Example]]]:
    import numpy as np

    vectors = embed([e.text for e in examples])
    out: dict[str, tuple[Any, list[Example]]] = {}
    for part in ("train", "val", "test"):
        rows = [i for i, e in enumerate(examples) if e.split == part]
        out[part] = (
            vectors[rows] if rows else np.zeros((0, vectors.shape[1])),
            [examples[i] for i in rows],
        )
    if not out["train"][1] or not out["test"][1]:
        raise CrossroadsError(
            "the data needs train and test rows (a 'split' column, or enough rows for the "
            f"hash split); got {Counter(e.split for e in examples)}"
        )
    return out


def _logistic(c: float, balanced: bool = True) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=2000, class_weight="balanced" if balanced else None)


def _fit_choosing_c(
    x: Any,
    y: Any,
    xv: Any,
    yv: Any,
    score: Callable[[Any, Any], float],
    fit: Callable[[float, Any, Any], Any],
) -> tuple[Any, float, dict[str, float]]:
    """Fit per C on train, keep the best C on val (train alone when there is no val), refit
    on train + val."""
    import numpy as np

    scores: dict[str, float] = {}
    if len(yv):
        for c in C_GRID:
            scores[str(c)] = score(fit(c, x, y), (xv, yv))
        best = float(max(scores, key=scores.__getitem__))
        x, y = np.concatenate([x, xv]), np.concatenate([y, yv])
    else:
        best = 1.0
    return fit(best, x, y), best, scores


# ---- domain -------------------------------------------------------------------------


def train_domain(
    examples: list[Example], embed: Embed, *, references: int = 1024, max_val_flagged: float = 0.02
) -> tuple[Head, dict[str, Any]]:
    """A softmax head over the labels. It also keeps up to ``references`` of its training
    vectors (float16) for the ood guard, and the guard's default distance: the largest at
    which at most ``max_val_flagged`` of the val prompts would be flagged (val only: test
    stays untouched)."""
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score

    from crossroads.signals.ood import ood_flags

    parts = _parts(examples, embed)
    (x, tr), (xv, va), (xt, te) = parts["train"], parts["val"], parts["test"]
    y, yv, yt = (np.array([e.label for e in p]) for p in (tr, va, te))

    def fit(c: float, a: Any, b: Any) -> Any:
        return _logistic(c).fit(a, b)

    def macro_f1(model: Any, data: tuple[Any, Any]) -> float:
        return float(f1_score(data[1], model.predict(data[0]), average="macro"))

    model, c, grid = _fit_choosing_c(x, y, xv, yv, macro_f1, fit)
    classes = [str(k) for k in model.classes_]
    coef, bias = model.coef_, model.intercept_
    if len(classes) == 2:  # sklearn keeps one row for two classes: expand to a softmax
        coef, bias = np.vstack([-coef[0] / 2, coef[0] / 2]), np.array([-bias[0] / 2, bias[0] / 2])
    head = Head([coef.T.astype(np.float32)], [bias.astype(np.float32)], classes, "softmax")

    fitted = np.concatenate([x, xv]) if len(yv) else x
    fitted_y = np.concatenate([y, yv]) if len(yv) else y
    rows = _sample(len(fitted), references)
    head.arrays = {
        "references": fitted[rows].astype(np.float16),
        "reference_labels": fitted_y[rows].astype(str),
    }
    in_scope = np.array([k != "other" for k in classes])
    val_in = yv != "other"
    if val_in.any():
        idx = _sample(len(x), references)
        refs = x[idx][y[idx] != "other"]
        sims = (xv[val_in] @ refs.T).max(axis=1)
        chosen = 0.0
        for q in np.linspace(0.0, 0.5, 51):
            candidate = float(np.quantile(sims, q))
            flags = ood_flags(head, xv[val_in], refs, in_scope, candidate, 0.5)[0]
            if flags.mean() <= max_val_flagged:
                chosen = candidate
        head.meta["ood_min_similarity"] = round(chosen, 4)

    predicted = np.array(classes)[head.scores(xt).argmax(axis=1)]
    majority = Counter(y.tolist()).most_common(1)[0][0]
    report: dict[str, Any] = {
        "signal": "domain",
        "encoder": ENCODER,
        "c": c,
        "val_macro_f1_by_c": grid,
        "rows": {part: len(p[1]) for part, p in parts.items()},
        "labels": classes,
        "test": _classification(yt, predicted, classes),
        "test_majority_baseline_accuracy": round(float(np.mean(yt == majority)), 4),
        "test_by_source": {
            source: {
                "n": int(mask.sum()),
                "accuracy": round(float(accuracy_score(yt[mask], predicted[mask])), 4),
            }
            for source in sorted({e.source for e in te})
            if (mask := np.array([e.source == source for e in te])).any()
        },
    }
    head.meta.update(
        signal="domain",
        encoder=ENCODER,
        c=c,
        rows=report["rows"],
        test_accuracy=report["test"]["accuracy"],
    )
    return head, report


def _sample(n: int, cap: int) -> Any:
    """A fixed sample of at most ``cap`` of ``n`` row indices (evenly spaced)."""
    import numpy as np

    return np.arange(n) if n <= cap else np.linspace(0, n - 1, cap).astype(int)


def _classification(y: Any, predicted: Any, classes: list[str]) -> dict[str, Any]:
    import numpy as np
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(y, predicted, labels=classes, zero_division=0)
    return {
        "n": int(len(y)),
        "accuracy": round(float(np.mean(y == predicted)), 4),
        "macro_f1": round(
            float(f1_score(y, predicted, labels=classes, average="macro", zero_division=0)), 4
        ),
        "per_label": {
            k: {
                "precision": round(float(p[i]), 3),
                "recall": round(float(r[i]), 3),
                "f1": round(float(f[i]), 3),
                "support": int(s[i]),
            }
            for i, k in enumerate(classes)
        },
        "confusion": {
            "labels": classes,
            "rows": confusion_matrix(y, predicted, labels=classes).tolist(),
        },
    }


# ---- complexity ---------------------------------------------------------------------


def _soft_logistic(c: float, x: Any, y: Any) -> Any:
    """Logistic regression on soft targets: each row once as a failure (weight y) and once
    as a success (weight 1 − y), so the output estimates the failure probability."""
    import numpy as np

    model = _logistic(c, balanced=False)
    xx = np.concatenate([x, x])
    yy = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
    return model.fit(xx, yy, sample_weight=np.concatenate([y, 1 - y]) + 1e-6)


def train_complexity(examples: list[Example], embed: Embed) -> tuple[Head, dict[str, Any]]:
    """A sigmoid head estimating the probability that a small model fails on the prompt."""
    import numpy as np
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    parts = _parts(examples, embed)
    (x, tr), (xv, va), (xt, te) = parts["train"], parts["val"], parts["test"]
    y, yv, yt = (np.array([float(e.label) for e in p]) for p in (tr, va, te))

    def neg_mse(model: Any, data: tuple[Any, Any]) -> float:
        return -float(np.mean((model.predict_proba(data[0])[:, 1] - data[1]) ** 2))

    model, c, grid = _fit_choosing_c(x, y, xv, yv, neg_mse, _soft_logistic)
    head = Head(
        [model.coef_.T.astype(np.float32)],
        [model.intercept_.astype(np.float32)],
        ["fail"],
        "sigmoid",
    )
    pred = head.scores(xt)
    fitted_y = np.concatenate([y, yv]) if len(yv) else y
    sources = np.array([e.source for e in te])
    # A baseline that knows each test prompt's dataset: its train mean failure rate.
    src_mean = {
        s: float(np.mean([e.label for e in tr + va if e.source == s] or [fitted_y.mean()]))
        for s in set(sources.tolist())
    }

    def summary(p: Any, t: Any) -> dict[str, float]:
        hard = t >= 0.5
        auc = roc_auc_score(hard, p) if 0 < hard.sum() < len(t) else float("nan")
        return {
            "mse": round(float(np.mean((p - t) ** 2)), 4),
            "spearman": round(float(spearmanr(p, t).statistic), 4)
            if np.ptp(p) and np.ptp(t)
            else float("nan"),
            "auc_fail": round(float(auc), 4),
        }

    report: dict[str, Any] = {
        "signal": "complexity",
        "encoder": ENCODER,
        "c": c,
        "val_neg_mse_by_c": grid,
        "rows": {part: len(p[1]) for part, p in parts.items()},
        "test": summary(pred, yt),
        "test_constant_baseline_mse": round(float(np.mean((fitted_y.mean() - yt) ** 2)), 4),
        "test_dataset_mean_baseline": summary(np.array([src_mean[s] for s in sources]), yt),
        "test_by_source": {
            s: {"n": int((sources == s).sum()), **summary(pred[sources == s], yt[sources == s])}
            for s in sorted(set(sources.tolist()))
        },
        "test_band_shares": {
            band: round(float(share), 3)
            for band, share in zip(
                ("easy", "medium", "hard"),
                np.histogram(pred, bins=[0, 0.35, 0.6, 1.0001])[0] / len(pred),
                strict=True,
            )
        },
    }
    head.meta.update(
        signal="complexity", encoder=ENCODER, c=c, rows=report["rows"], test=report["test"]
    )
    return head, report


# ---- jailbreak ----------------------------------------------------------------------


def train_jailbreak(
    examples: list[Example], embed: Embed, external: list[Example] | None = None
) -> tuple[Head, dict[str, Any]]:
    """A sigmoid attack head; the report compares head, rules and both on the test split and
    on ``external`` (attack sets from elsewhere, never trained on)."""
    import numpy as np
    from sklearn.metrics import average_precision_score

    parts = _parts(examples, embed)
    (x, tr), (xv, va), (xt, te) = parts["train"], parts["val"], parts["test"]
    y, yv = (np.array([int(e.label) for e in p]) for p in (tr, va))

    def fit(c: float, a: Any, b: Any) -> Any:
        return _logistic(c).fit(a, b)

    def ap(model: Any, data: tuple[Any, Any]) -> float:
        return float(average_precision_score(data[1], model.predict_proba(data[0])[:, 1]))

    model, c, grid = _fit_choosing_c(x, y, xv, yv, ap, fit)
    head = Head(
        [model.coef_.T.astype(np.float32)],
        [model.intercept_.astype(np.float32)],
        ["attack"],
        "sigmoid",
    )
    report: dict[str, Any] = {
        "signal": "jailbreak",
        "encoder": ENCODER,
        "c": c,
        "val_average_precision_by_c": grid,
        "rows": {part: len(p[1]) for part, p in parts.items()},
        "train_positives": int(y.sum() + yv.sum()),
        "test": jailbreak_scores(head, te, xt),
    }
    # Wrapper x goal templates are easy once one wrapper is seen: report without them too.
    written = [i for i, e in enumerate(te) if e.source != "template"]
    if written:
        report["test_without_templates"] = jailbreak_scores(
            head, [te[i] for i in written], xt[written]
        )
    if external:
        report["external"] = jailbreak_scores(head, external, embed([e.text for e in external]))
    head.meta.update(signal="jailbreak", encoder=ENCODER, c=c, rows=report["rows"])
    return head, report


def jailbreak_scores(
    head: Head, examples: list[Example], vectors: Any, threshold: float = 0.5
) -> dict[str, Any]:
    """Precision and recall of the head, the rules and both, at ``threshold``."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from crossroads.signals.jailbreak import RULE_SCORE, rule_hit

    y = np.array([int(e.label) for e in examples])
    head_p = head.scores(vectors)
    rules = np.array([rule_hit(e.text) is not None for e in examples])
    both = np.maximum(head_p, np.where(rules, RULE_SCORE, 0.0))

    def pr(flag: Any) -> dict[str, float]:
        tp = int((flag & (y == 1)).sum())
        return {
            "precision": round(tp / max(1, int(flag.sum())), 3),
            "recall": round(tp / max(1, int((y == 1).sum())), 3),
            "false_positive_rate": round(
                int((flag & (y == 0)).sum()) / max(1, int((y == 0).sum())), 3
            ),
        }

    out: dict[str, Any] = {
        "n": int(len(y)),
        "positives": int(y.sum()),
        "head": pr(head_p >= threshold),
        "rules": pr(rules),
        "head+rules": pr(both >= threshold),
    }
    if 0 < y.sum() < len(y):
        out["head_auc"] = round(float(roc_auc_score(y, head_p)), 4)
    by_source: dict[str, Any] = {}
    for source in sorted({e.source for e in examples}):
        mask = np.array([e.source == source for e in examples])
        flagged = both[mask] >= threshold
        by_source[source] = {
            "n": int(mask.sum()),
            "positives": int(y[mask].sum()),
            "flagged": int(flagged.sum()),
        }
    out["by_source"] = by_source
    return out


# ---- ood ----------------------------------------------------------------------------


def evaluate_ood(
    head: Head,
    test: list[Example],
    embed: Embed,
    ood_texts: list[str],
    exemplars: dict[str, list[str]],
) -> dict[str, Any]:
    """The guard with its defaults on the domain test split (in distribution) against
    ``ood_texts``; then scoped to the labels of ``exemplars`` (the decisions' examples),
    where test prompts of every other label should be flagged."""
    import numpy as np

    from crossroads.signals.ood import EXEMPLAR_SIMILARITY, REFERENCE_SIMILARITY, ood_flags

    held_in = [e for e in test if e.label != "other"]
    xin, xout = embed([e.text for e in held_in]), embed(ood_texts)
    in_scope = np.array([label != "other" for label in head.labels])
    refs = head.arrays["references"][head.arrays["reference_labels"] != "other"]
    refs = refs.astype(np.float32)
    threshold = head.meta.get("ood_min_similarity", REFERENCE_SIMILARITY)

    def rate(flags: Any) -> float:
        return round(float(np.mean(flags)), 3) if len(flags) else float("nan")

    report: dict[str, Any] = {
        "default": {
            "min_similarity": threshold,
            "min_confidence": 0.5,
            "in_distribution_n": len(held_in),
            "ood_n": len(ood_texts),
            "false_positive_rate": rate(ood_flags(head, xin, refs, in_scope, threshold, 0.5)[0]),
            "true_positive_rate": rate(ood_flags(head, xout, refs, in_scope, threshold, 0.5)[0]),
        }
    }
    scoped = sorted(exemplars)
    refs = embed([t for label in scoped for t in exemplars[label]])
    in_scope = np.array([label in scoped for label in head.labels])
    xt = embed([e.text for e in test])
    flags = ood_flags(head, xt, refs, in_scope, EXEMPLAR_SIMILARITY, 0.5)[0]
    inside = np.array([e.label in scoped for e in test])
    report["scoped"] = {
        "labels": scoped,
        "exemplars": sum(len(v) for v in exemplars.values()),
        "min_similarity": EXEMPLAR_SIMILARITY,
        "min_confidence": 0.5,
        "in_scope_n": int(inside.sum()),
        "out_of_scope_n": int((~inside).sum()),
        "false_positive_rate": rate(flags[inside]),
        "true_positive_rate": rate(flags[~inside]),
        "true_positive_rate_by_label": {
            label: rate(flags[np.array([e.label == label for e in test])])
            for label in head.labels
            if label not in scoped
        },
    }
    return report
