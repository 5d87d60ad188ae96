"""Linear routers: ridge regression on quality, and per-model logistic regression."""

from __future__ import annotations

import numpy as np

from crossroads.routers.base import Outcomes, Router, fill_missing


class LinearRouter(Router):
    """Multi-output ridge regression from prompt features to per-model quality."""

    def __init__(self, alpha: float = 10.0, embedder: object | None = None) -> None:
        self.alpha = alpha
        self.embedder = embedder

    def _fit(self, features: np.ndarray, outcomes: Outcomes) -> None:
        from sklearn.linear_model import Ridge

        self.ridge_ = Ridge(alpha=self.alpha).fit(features, fill_missing(outcomes.quality))

    def _predict(self, features: np.ndarray) -> np.ndarray:
        pred = np.asarray(self.ridge_.predict(features)).reshape(len(features), -1)
        return np.asarray(np.clip(pred, 0.0, 1.0))


class LogisticRouter(Router):
    """One logistic regression per model: P(model answers well | prompt).

    Fractional qualities (judge grades, shares of correct samples) are used as soft labels:
    each prompt appears once as a positive with weight ``q`` and once as a negative with
    weight ``1 - q``, which is exactly the cross-entropy against ``q``.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 200, embedder: object | None = None):
        self.C = C
        self.max_iter = max_iter
        self.embedder = embedder

    def _fit(self, features: np.ndarray, outcomes: Outcomes) -> None:
        from sklearn.linear_model import LogisticRegression

        self.heads_: list[LogisticRegression | float] = []
        for j in range(len(outcomes.models)):
            q = outcomes.quality[:, j]
            known = ~np.isnan(q)
            q = np.clip(q[known], 0.0, 1.0)
            if q.size == 0 or q.min() == q.max():
                self.heads_.append(float(q.mean()) if q.size else 0.5)
                continue
            n = int(known.sum())
            y = np.r_[np.ones(n), np.zeros(n)]
            w = np.r_[q, 1.0 - q]
            keep = w > 0
            x = np.concatenate([features[known], features[known]])[keep]
            head = LogisticRegression(C=self.C, max_iter=self.max_iter)
            self.heads_.append(head.fit(x, y[keep], sample_weight=w[keep]))
        self._stack_heads(features.shape[1])

    def _predict(self, features: np.ndarray) -> np.ndarray:
        # One matrix product for all heads: sklearn's per-head predict_proba costs ~0.2 ms
        # of input validation each, too much on the request path.
        from scipy.special import expit

        probs = expit(features @ self.coef_ + self.intercept_)
        return np.where(self.constant_ >= 0, self.constant_, probs)

    def _stack_heads(self, dim: int) -> None:
        m = len(self.heads_)
        self.coef_ = np.zeros((dim, m))
        self.intercept_ = np.zeros(m)
        self.constant_ = np.full(m, -1.0)  # >= 0: a head that saw one label only
        for j, head in enumerate(self.heads_):
            if isinstance(head, float):
                self.constant_[j] = head
            else:
                self.coef_[:, j] = head.coef_[0]
                self.intercept_[j] = head.intercept_[0]
