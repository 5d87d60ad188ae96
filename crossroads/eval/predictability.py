"""How predictable is "a cheap model is as good as the best one" from the prompt?

A router saves cost at the best single model's quality only by sending prompts to cheaper
models where they lose nothing. The label of a prompt is ``1`` if some *cheap* model
(mean training cost <= ``cheap_share`` x the best single model's) scores at least as high
as the best single model on it. A router's score for that label is its predicted quality
of the best cheap model minus its prediction for the best single model; the ROC AUC of
that score says how well the router ranks prompts for substitution (0.5: no better than
chance; the oracle has 1.0).
"""

from __future__ import annotations

import numpy as np


def cheap_models(cost_mean: np.ndarray, best: int, cheap_share: float = 0.5) -> np.ndarray:
    """Indices of models whose mean cost is at most ``cheap_share`` of model ``best``'s."""
    return np.flatnonzero(cost_mean <= cheap_share * cost_mean[best])


def substitution_labels(quality: np.ndarray, best: int, cheap: np.ndarray) -> np.ndarray:
    """1 where the best cheap model scores at least as high as model ``best`` on the prompt."""
    return np.asarray(quality[:, cheap].max(axis=1) >= quality[:, best], dtype=np.int8)


def substitution_scores(predicted: np.ndarray, best: int, cheap: np.ndarray) -> np.ndarray:
    """A router's evidence for substitution: best predicted cheap quality minus ``best``'s."""
    return np.asarray(predicted[:, cheap].max(axis=1) - predicted[:, best])


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank statistic (ties count half); NaN for one class.

    >>> roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    from scipy.stats import rankdata

    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
