"""Cosine nearest-neighbour search shared by the kNN and Bradley-Terry routers.

One query against 20,000 x 384 float32 vectors reads 30 MB, more than the CPU cache holds,
so brute force costs ~3-5 ms per prompt. Projecting the unit vectors on their top
``n_components`` principal directions (fitted on the training prompts only) and
re-normalising keeps the neighbour ranking almost intact and shrinks the matrix to 10 MB
(128 dims), which answers in ~0.1 ms. Small indices (under ``EXACT_MAX_FLOATS`` floats,
e.g. 442 AlpacaEval prompts) fit in cache already and are searched exactly.
"""

from __future__ import annotations

import numpy as np

EXACT_MAX_FLOATS = 1_000_000  # 4 MB of float32: searched exactly, no projection needed


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit length (float32; zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    return np.asarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))


class CosineIndex:
    """Exact top-``k`` cosine search over training vectors, PCA-projected to ``n_components``
    dimensions when there are more than ``EXACT_MAX_FLOATS`` numbers (``None``: never).

    >>> index = CosineIndex(n_components=None).fit(np.eye(3, dtype=np.float32))
    >>> index.search(np.array([[0.0, 2.0, 0.0]]), 1)[0].tolist()
    [[1]]
    """

    def __init__(self, n_components: int | None = 128) -> None:
        self.n_components = n_components

    def fit(self, features: np.ndarray) -> CosineIndex:
        """Index ``features``; the projection (if any) is learned from them alone."""
        unit = unit_rows(features)
        dim = unit.shape[1]
        self.projection_: np.ndarray | None = None
        small = unit.size <= EXACT_MAX_FLOATS
        if self.n_components is not None and self.n_components < dim and not small:
            centred = unit - unit.mean(axis=0)
            # Eigenvectors of the d x d scatter matrix: cheap for d = 384 at any n.
            _, vecs = np.linalg.eigh(centred.T.astype(np.float64) @ centred)
            self.projection_ = np.ascontiguousarray(
                vecs[:, ::-1][:, : self.n_components], dtype=np.float32
            )
            unit = unit_rows(unit @ self.projection_)
        # Stored transposed: a (1, d) x (d, n) product streams memory contiguously.
        self.vectors_t_ = np.ascontiguousarray(unit.T)
        return self

    def transform(self, queries: np.ndarray) -> np.ndarray:
        """Queries as unit vectors in the index's space."""
        unit = unit_rows(queries)
        if self.projection_ is not None:
            unit = unit_rows(unit @ self.projection_)
        return unit

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices ``(n, k)`` of the ``k`` most similar training rows, and their cosines."""
        sims = self.transform(queries) @ self.vectors_t_
        k = max(1, min(k, sims.shape[1]))
        if k == sims.shape[1]:
            idx = np.broadcast_to(np.arange(k), sims.shape).copy()
        else:
            idx = np.argpartition(sims, -k, axis=1)[:, -k:]
        return idx, np.take_along_axis(sims, idx, axis=1)
