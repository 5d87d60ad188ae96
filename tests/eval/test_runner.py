import json

import numpy as np
import pytest

from crossroads.eval.datasets import load_dataset, split_indices
from crossroads.eval.report import write_report
from crossroads.eval.runner import evaluate
from crossroads.eval.synthetic import make_routing_data, write_dataset
from crossroads.routers import make
from crossroads.routers.knn import KNNRouter


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = write_dataset(tmp_path_factory.mktemp("d") / "syn", n=400, n_models=3)
    ds = load_dataset(path)
    x, _, _ = make_routing_data(n=400, n_models=3)
    return ds, x


class SpyRouter(KNNRouter):
    """Records every feature row it was fitted on."""

    seen: list[np.ndarray] = []

    def _fit(self, features, outcomes):
        SpyRouter.seen.append(features.copy())
        super()._fit(features, outcomes)


def test_leakage_test_split_never_reaches_fit(dataset) -> None:
    ds, x = dataset
    # every row unique; float32 as routers see them, so the byte comparison is not vacuous
    x = (x + np.arange(len(x))[:, None] * 1e-3).astype(np.float32)
    SpyRouter.seen = []
    evaluate(ds, {"spy": SpyRouter()}, features=x, n_boot=5)
    test_rows = {row.tobytes() for row in x[split_indices(ds)["test"]]}
    seen = {row.tobytes() for row in SpyRouter.seen[0]}
    assert seen and not seen & test_rows
    assert seen == {row.tobytes() for row in x[split_indices(ds)["train"]]}


def test_evaluate_reports_baselines_and_learned(dataset, tmp_path) -> None:
    ds, x = dataset
    result = evaluate(ds, ["mean", "knn", "logistic"], features=x, n_boot=20)
    names = {r.name for r in result.results}
    assert {"oracle", "random", "mean", "knn", "single:model-0"} <= names
    by = {r.name: r for r in result.results}
    assert by["oracle"].metrics["aiq"] >= by["knn"].metrics["aiq"]
    assert by["knn"].metrics["aiq"] > by["random"].metrics["aiq"]
    lo, hi = by["knn"].intervals["aiq"]
    assert lo <= by["knn"].metrics["aiq"] <= hi
    assert result.split_sizes["test"] == 120

    page = write_report([result], tmp_path / "rep")
    assert page.read_text().count("<table>") == 1
    data = json.loads((tmp_path / "rep" / "syn.json").read_text())
    assert data["numbers_from"] == "test split"
    assert (tmp_path / "rep" / "syn.png").stat().st_size > 1000
    assert "| knn | learned |" in (tmp_path / "rep" / "syn.md").read_text()


def test_two_model_datasets_get_apgr(tmp_path) -> None:
    ds = load_dataset(write_dataset(tmp_path / "two", n=300, n_models=2))
    x, _, _ = make_routing_data(n=300, n_models=2)
    result = evaluate(ds, {"knn": make("knn")}, features=x, n_boot=10)
    by = {r.name: r for r in result.results}
    assert result.strong_weak is not None
    assert 0.35 < by["random"].metrics["apgr"] < 0.65
    assert {"cpt50", "cpt80", "cpt95"} <= set(by["knn"].metrics)
