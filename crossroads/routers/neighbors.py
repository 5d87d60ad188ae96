"""Cosine nearest-neighbour search shared by the kNN and Bradley-Terry routers.

One query against 20,000 x 384 float32 vectors reads 30 MB, more than the CPU cache holds,
so brute force costs ~3-5 ms per prompt. Projecting the unit vectors on their top
``n_components`` principal directions (fitted on the training prompts only) and
re-normalising keeps the neighbour ranking almost intact and shrinks the matrix to 10 MB
(128 dims). Scanning all 20,000 similarities and ``argpartition`` over them still cost
~0.25-0.4 ms on a busy 2-core machine, so indices of at least ``IVF_MIN_ROWS`` rows are also
split by spherical k-means into ~sqrt(n) lists (an inverted file, IVF): a query scores the
centroids and then only the members of its ``n_probe`` nearest lists (~7% of the rows).
Small indices (under ``EXACT_MAX_FLOATS`` floats, e.g. 442 AlpacaEval prompts) fit in cache
already and are searched exactly.
"""

from __future__ import annotations

import numpy as np

EXACT_MAX_FLOATS = 1_000_000  # 4 MB of float32: searched exactly, no projection needed
IVF_MIN_ROWS = 4096  # from this many training rows, search the nearest k-means lists only


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

    def __init__(
        self, n_components: int | None = 128, n_probe: int = 10, kmeans_iterations: int = 10
    ) -> None:
        self.n_components = n_components
        self.n_probe = n_probe
        self.kmeans_iterations = kmeans_iterations

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
        self.lists_: list[tuple[np.ndarray, np.ndarray]] | None = None
        if len(unit) >= IVF_MIN_ROWS and self.n_probe > 0:
            self._fit_lists(unit)
        return self

    def _fit_lists(self, unit: np.ndarray) -> None:
        """Spherical k-means (seeded) into ~sqrt(n) lists: centroids and, per list, its
        members' vectors (contiguous) and row indices."""
        n = len(unit)
        n_lists = max(1, int(round(np.sqrt(n))))
        rng = np.random.default_rng(0)
        centroids = unit[rng.choice(n, n_lists, replace=False)]
        for _ in range(self.kmeans_iterations):
            assign = np.argmax(unit @ centroids.T, axis=1)
            sums = np.zeros_like(centroids)
            np.add.at(sums, assign, unit)
            empty = np.bincount(assign, minlength=n_lists) == 0
            sums[empty] = unit[rng.choice(n, int(empty.sum()), replace=False)]
            centroids = unit_rows(sums)
        assign = np.argmax(unit @ centroids.T, axis=1)
        self.centroids_t_ = np.ascontiguousarray(centroids.T)
        self.lists_ = []
        for c in range(n_lists):
            rows = np.flatnonzero(assign == c)
            self.lists_.append((np.ascontiguousarray(unit[rows]), rows))
        self.list_sizes_ = np.array([len(rows) for _, rows in self.lists_])

    def transform(self, queries: np.ndarray) -> np.ndarray:
        """Queries as unit vectors in the index's space."""
        unit = unit_rows(queries)
        if self.projection_ is not None:
            unit = unit_rows(unit @ self.projection_)
        return unit

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices ``(n, k)`` of the ``k`` most similar training rows, and their cosines
        (among the ``n_probe`` nearest lists' members when the index has lists)."""
        if getattr(self, "lists_", None) is not None and k < self.vectors_t_.shape[1]:
            return self._search_lists(self.transform(queries), max(1, k))
        sims = self.transform(queries) @ self.vectors_t_
        k = max(1, min(k, sims.shape[1]))
        if k == sims.shape[1]:
            idx = np.broadcast_to(np.arange(k), sims.shape).copy()
        else:
            idx = np.argpartition(sims, -k, axis=1)[:, -k:]
        return idx, np.take_along_axis(sims, idx, axis=1)

    def _search_lists(self, unit: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.lists_ is not None
        idx = np.empty((len(unit), k), dtype=np.intp)
        top = np.empty((len(unit), k), dtype=np.float32)
        order = np.argsort(-(unit @ self.centroids_t_), axis=1)
        for i, (u, lists) in enumerate(zip(unit, order, strict=True)):
            # The n_probe nearest lists, more if they hold fewer than k rows.
            enough = int(np.searchsorted(np.cumsum(self.list_sizes_[lists]), k)) + 1
            probe = [self.lists_[c] for c in lists[: max(self.n_probe, enough)]]
            sims = np.concatenate([vecs @ u for vecs, _ in probe])
            rows = np.concatenate([r for _, r in probe])
            best = np.argpartition(sims, -k)[-k:] if k < len(sims) else np.arange(len(sims))
            idx[i], top[i] = rows[best], sims[best]
        return idx, top
