"""Hyper-parameter selection reads train and validation rows only, and picks by val AIQ."""

from __future__ import annotations

import numpy as np
import pytest

from crossroads.eval.datasets import load_dataset, split_indices
from crossroads.eval.runner import evaluate
from crossroads.eval.synthetic import make_routing_data, write_dataset
from crossroads.eval.tuning import CV_BELOW_ROWS, CV_FOLDS, GRIDS, selection_folds, tune
from crossroads.routers import Outcomes, available
from crossroads.routers.knn import KNNRouter


class RowSpy(KNNRouter):
    """Records the features of every fit and predict call (class-level, clones share it)."""

    fitted: list[np.ndarray] = []
    predicted: list[np.ndarray] = []

    def _fit(self, features, outcomes):
        RowSpy.fitted.append(features.copy())
        super()._fit(features, outcomes)

    def _predict(self, features):
        RowSpy.predicted.append(features.copy())
        return super()._predict(features)


def _rows(arrays: list[np.ndarray]) -> set[bytes]:
    return {row.tobytes() for a in arrays for row in a}


@pytest.fixture()
def unique_data() -> tuple[np.ndarray, Outcomes]:
    x, outcomes, _ = make_routing_data(n=400, n_models=3, seed=3)
    return (x + np.arange(len(x))[:, None] * 1e-3).astype(np.float32), outcomes


def test_tune_fits_on_train_and_scores_on_val_only(unique_data) -> None:
    x, outcomes = unique_data
    train, val, test = np.arange(0, 250), np.arange(250, 320), np.arange(320, 400)
    RowSpy.fitted, RowSpy.predicted = [], []
    found = tune("knn", x, outcomes, train, val, router=RowSpy())
    assert len(RowSpy.fitted) == len(found.table) == 6
    assert _rows(RowSpy.fitted) == _rows([x[train]])
    assert _rows(RowSpy.predicted) == _rows([x[val]])
    assert not _rows(RowSpy.fitted + RowSpy.predicted) & _rows([x[test]])
    assert found.val_aiq == max(score for _, score in found.table)
    assert found.params in [params for params, _ in found.table]


def test_tune_prefers_the_better_candidate(unique_data) -> None:
    """One neighbour and no shrinkage is noisy on 0/1 outcomes; 40 neighbours is not."""
    x, outcomes = unique_data
    train, val = np.arange(0, 300), np.arange(300, 400)
    grid = {"n_neighbors": [1, 40], "prior_strength": [0.0]}
    found = tune("knn", x, outcomes, train, val, grid=grid)
    assert found.params["n_neighbors"] == 40


def test_every_grid_names_a_registered_router_and_its_parameters() -> None:
    from crossroads.routers import make

    for name, grid in GRIDS.items():
        assert name in available()
        assert set(grid) <= set(make(name).get_params()), name


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = write_dataset(tmp_path_factory.mktemp("d") / "syn", n=400, n_models=3)
    x, _, _ = make_routing_data(n=400, n_models=3)
    # float32 rows: what routers see, so row bytes compare equal
    return load_dataset(path), (x + np.arange(400)[:, None] * 1e-3).astype(np.float32)


def test_tuned_evaluation_never_fits_or_selects_on_test(dataset) -> None:
    ds, x = dataset
    split = split_indices(ds)
    RowSpy.fitted, RowSpy.predicted = [], []
    evaluate(ds, {"knn": RowSpy()}, features=x, n_boot=5, tune=True)
    # a small dataset: six grid points x five folds of train+val, then the final fit
    assert len(RowSpy.fitted) == 6 * CV_FOLDS + 1
    assert not _rows(RowSpy.fitted) & _rows([x[split["test"]]])
    assert _rows(RowSpy.fitted) == _rows([x[split["train"]], x[split["val"]]])
    assert _rows(RowSpy.fitted[-1:]) == _rows([x[split["train"]]])


def test_selection_folds_partition_train_and_val_only() -> None:
    train, val = np.arange(0, 300), np.arange(300, 400)
    folds = selection_folds(train, val)
    assert len(folds) == CV_FOLDS
    scored = np.concatenate([s for _, s in folds])
    assert sorted(scored.tolist()) == list(range(400))  # every non-test row scored once
    for fit_rows, score_rows in folds:
        assert not set(fit_rows) & set(score_rows)
        assert set(fit_rows) | set(score_rows) == set(range(400))
    big_train = np.arange(0, CV_BELOW_ROWS)
    assert len(selection_folds(big_train, val + CV_BELOW_ROWS)) == 1


def test_test_outcomes_do_not_change_the_choice(dataset) -> None:
    """Scrambling every test outcome leaves the chosen parameters and val AIQs unchanged."""
    ds, x = dataset
    test = split_indices(ds)["test"]
    first = evaluate(ds, ["knn", "logistic", "mf"], features=x, n_boot=5, tune=True)
    quality = ds.outcomes.quality.copy()
    quality[test] = np.random.default_rng(0).random((len(test), quality.shape[1]))
    ds.outcomes = Outcomes(ds.outcomes.models, quality, ds.outcomes.cost)
    second = evaluate(ds, ["knn", "logistic", "mf"], features=x, n_boot=5, tune=True)
    assert first.selected == second.selected
    for a, b in zip(first.results, second.results, strict=True):
        if a.kind == "learned":
            assert a.params == b.params and a.val_aiq == b.val_aiq
