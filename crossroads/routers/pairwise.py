"""Pairwise router (RouteLLM's "does the strong model win?" classifier, for any number of
models): model the *difference* to a reference model rather than each quality on its own.

Cost-aware routing decides between models by ``q_j - q_ref`` on each prompt. Fitting two
independent per-model predictors and subtracting adds their errors; one classifier per
model on the soft label ``(q_j - q_ref + 1) / 2`` models the decision itself. For a
two-model dataset this is exactly a calibrated threshold router on P(weak model is at least
as good as the strong one).
"""

from __future__ import annotations

import numpy as np

from crossroads.routers.base import Outcomes, Router, fill_missing


class PairwiseRouter(Router):
    """Predicts ``mean(q_ref) + E[q_j - q_ref | prompt]`` with one logistic regression per
    model on soft labels; the reference is the model with the best mean training quality.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 200, embedder: object | None = None):
        self.C = C
        self.max_iter = max_iter
        self.embedder = embedder

    def _fit(self, features: np.ndarray, outcomes: Outcomes) -> None:
        from sklearn.linear_model import LogisticRegression

        q = np.clip(fill_missing(outcomes.quality), 0.0, 1.0)
        self.reference_ = int(np.argmax(q.mean(axis=0)))
        self.reference_mean_ = float(q[:, self.reference_].mean())
        m, dim = q.shape[1], features.shape[1]
        self.coef_ = np.zeros((dim, m))
        self.intercept_ = np.zeros(m)
        self.constant_ = np.full(m, np.nan)  # set: the difference is the same on every prompt
        n = len(q)
        for j in range(m):
            target = (q[:, j] - q[:, self.reference_] + 1.0) / 2.0
            if j == self.reference_ or target.min() == target.max():
                self.constant_[j] = float(target.mean())
                continue
            # Soft labels as two weighted copies: exactly the cross-entropy against target.
            y = np.r_[np.ones(n), np.zeros(n)]
            w = np.r_[target, 1.0 - target]
            keep = w > 0
            x = np.concatenate([features, features])[keep]
            head = LogisticRegression(C=self.C, max_iter=self.max_iter)
            head.fit(x, y[keep], sample_weight=w[keep])
            self.coef_[:, j] = head.coef_[0]
            self.intercept_[j] = head.intercept_[0]

    def _predict(self, features: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        p = expit(features @ self.coef_ + self.intercept_)
        p = np.where(np.isnan(self.constant_), p, self.constant_)
        return np.clip(self.reference_mean_ + 2.0 * p - 1.0, 0.0, 1.0)
