"""The cosine index behind kNN and Bradley-Terry: exact when small, projected when large."""

from __future__ import annotations

import numpy as np

from crossroads.routers.neighbors import EXACT_MAX_FLOATS, CosineIndex, unit_rows


def _brute_force(train: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    sims = unit_rows(queries) @ unit_rows(train).T
    return np.sort(np.argsort(-sims, axis=1)[:, :k], axis=1)


def test_small_index_is_exact_and_unprojected() -> None:
    rng = np.random.default_rng(0)
    train, queries = rng.normal(size=(500, 32)), rng.normal(size=(20, 32))
    index = CosineIndex(n_components=8).fit(train)
    assert index.projection_ is None  # 500 x 32 floats: searched exactly
    idx, sims = index.search(queries, 5)
    np.testing.assert_array_equal(np.sort(idx, axis=1), _brute_force(train, queries, 5))
    np.testing.assert_allclose(np.sort(sims, axis=1)[:, ::-1].max(1), sims.max(1))


def test_large_index_projects_and_keeps_most_neighbours() -> None:
    """384-d data whose variance lives mostly in 64 directions (as with sentence
    embeddings): the 128-d projection keeps >= 80% of the exact top-20 neighbours."""
    rng = np.random.default_rng(1)
    n, dim = EXACT_MAX_FLOATS // 384 + 500, 384
    basis = rng.normal(size=(64, dim))

    def sample(rows: int) -> np.ndarray:
        return rng.normal(size=(rows, 64)) @ basis + 0.3 * rng.normal(size=(rows, dim))

    train, queries = sample(n), sample(30)
    index = CosineIndex(n_components=128).fit(train)
    assert index.projection_ is not None and index.vectors_t_.shape == (128, n)
    found = index.search(queries, 20)[0]
    exact = _brute_force(train, queries, 20)
    recall = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(found, exact, strict=True)])
    assert recall >= 0.8


def test_projection_depends_on_training_rows_only() -> None:
    rng = np.random.default_rng(2)
    train = rng.normal(size=(3000, 384))
    index = CosineIndex(n_components=64).fit(train)
    before = index.projection_.copy()
    index.search(rng.normal(size=(50, 384)) * 100, 3)
    np.testing.assert_array_equal(index.projection_, before)


def test_k_larger_than_index_returns_every_row() -> None:
    index = CosineIndex(n_components=None).fit(np.eye(3))
    idx, _ = index.search(np.ones((2, 3)), 10)
    assert idx.shape == (2, 3) and sorted(idx[0]) == [0, 1, 2]


def test_inverted_lists_keep_most_neighbours_and_cover_k() -> None:
    """From IVF_MIN_ROWS rows the search scans the nearest k-means lists only: clustered
    data keeps >= 90% of the exact top-20, and k is always filled."""
    from crossroads.routers.neighbors import IVF_MIN_ROWS

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(40, 32))
    train = centres[rng.integers(0, 40, IVF_MIN_ROWS + 100)] + 0.5 * rng.normal(
        size=(IVF_MIN_ROWS + 100, 32)
    )
    queries = centres[rng.integers(0, 40, 30)] + 0.5 * rng.normal(size=(30, 32))
    index = CosineIndex(n_components=None).fit(train)
    assert index.lists_ is not None
    found, sims = index.search(queries, 20)
    exact = _brute_force(train, queries, 20)
    recall = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(found, exact, strict=True)])
    assert recall >= 0.9
    np.testing.assert_allclose(
        sims, np.take_along_axis(unit_rows(queries) @ unit_rows(train).T, found, 1), atol=1e-5
    )
    big = index.search(queries[:2], 3000)[0]  # more than n_probe lists hold
    assert big.shape == (2, 3000) and len(set(big[0])) == 3000
