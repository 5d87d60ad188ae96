"""Bradley-Terry router for preference data (RouteLLM "similarity-weighted ranking").

For a prompt, the ``n_neighbors`` most similar training prompts vote on every model pair
(``i`` beats ``j`` where its quality is higher, half a win each on a tie), weighted by
similarity (cosine after the PCA projection of ``neighbors.CosineIndex``), plus
``prior_strength`` votes from the whole training set. Bradley-Terry
strengths are fitted to those votes by the MM algorithm (Hunter, 2004). The prediction for a
model is its modelled win rate against the field, so it ranks models rather than
estimating absolute quality: fine for ``lam`` sweeps; calibrate ``quality_target`` on it.
"""

from __future__ import annotations

import numpy as np

from crossroads.routers.base import Outcomes, Router, fill_missing
from crossroads.routers.neighbors import CosineIndex


def _pairwise_wins(quality: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted win matrices: ``(b, k, m)`` qualities and ``(b, k)`` weights -> ``(b, m, m)``."""
    diff = quality[:, :, :, None] - quality[:, :, None, :]
    votes = (diff > 0) + 0.5 * (diff == 0)
    return np.asarray(np.einsum("bk,bkij->bij", weights, votes))


def bradley_terry(
    wins: np.ndarray, iterations: int = 30, start: np.ndarray | None = None, tol: float = 0.0
) -> np.ndarray:
    """MM estimates of BT strengths from ``(b, m, m)`` win matrices (diagonal ignored),
    starting from ``start`` (``(m,)`` or ``(b, m)``; default all ones) and stopping early once
    no strength moves by more than ``tol`` (relative to the mean strength, 1) in an iteration.
    """
    b, m, _ = wins.shape
    wins = wins * (1 - np.eye(m))
    games = wins + wins.transpose(0, 2, 1)
    won = wins.sum(axis=2) + 1e-9
    p = np.ones((b, m)) if start is None else np.broadcast_to(start, (b, m)).astype(float)
    for _ in range(iterations):
        denom = (games / (p[:, :, None] + p[:, None, :])).sum(axis=2) + 1e-12
        new = won / denom
        new /= new.sum(axis=1, keepdims=True) / m
        done = tol > 0 and float(np.abs(new - p).max()) <= tol
        p = new
        if done:
            break
    return p


class BradleyTerryRouter(Router):
    """Similarity-weighted Bradley-Terry over pairwise preferences of neighbouring prompts."""

    def __init__(
        self,
        n_neighbors: int = 40,
        prior_strength: float = 5.0,
        iterations: int = 30,
        tol: float = 1e-3,
        n_components: int | None = 128,
        embedder: object | None = None,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.prior_strength = prior_strength
        self.iterations = iterations
        self.tol = tol
        self.n_components = n_components
        self.embedder = embedder

    def _fit(self, features: np.ndarray, outcomes: Outcomes) -> None:
        self.index_ = CosineIndex(self.n_components).fit(features)
        self.train_quality_ = fill_missing(outcomes.quality).astype(np.float32)
        q = self.train_quality_
        wins = np.zeros((q.shape[1], q.shape[1]))
        for start in range(0, len(q), 256):
            chunk = q[start : start + 256][None]
            wins += _pairwise_wins(chunk, np.ones((1, chunk.shape[1])))[0]
        self.global_win_rate_ = wins / len(q)
        # Warm start of every prediction: the strengths of the whole training set. Each
        # prompt's neighbours move them a little, so MM needs a few iterations, not 30.
        self.global_strength_ = bradley_terry(self.global_win_rate_[None], 200, tol=1e-9)[0]

    def _predict(self, features: np.ndarray) -> np.ndarray:
        out = np.empty((len(features), self.train_quality_.shape[1]))
        for start in range(0, len(features), 64):
            idx, sims = self.index_.search(features[start : start + 64], self.n_neighbors)
            k = idx.shape[1]
            w = np.maximum(sims, 0.0) + 1e-6
            wins = _pairwise_wins(self.train_quality_[idx], w / w.sum(1, keepdims=True) * k)
            wins += self.prior_strength * self.global_win_rate_
            warm = getattr(self, "global_strength_", None)  # absent in older artifacts
            p = bradley_terry(wins, self.iterations, warm, getattr(self, "tol", 0.0))
            out[start : start + 64] = (p[:, :, None] / (p[:, :, None] + p[:, None, :])).mean(2)
        return out
