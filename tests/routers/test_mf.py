import numpy as np
import pytest

from crossroads.eval.synthetic import make_routing_data
from crossroads.routers.mf import MatrixFactorizationRouter


def test_add_model_from_few_labels_ranks_it_per_topic() -> None:
    """A model joining later with 40 labels is predicted better than its global mean."""
    x, outcomes, topic = make_routing_data(n=2000, n_models=6, seed=3)
    known = outcomes.quality[:, :5]
    new = outcomes.quality[:, 5]
    train, few, test = np.arange(1500), np.arange(1500, 1540), np.arange(1600, 2000)
    router = MatrixFactorizationRouter(rank=4).fit(
        x[train], type(outcomes)(outcomes.models[:5], known[train], outcomes.cost[train, :5])
    )
    router.add_model("late", x[few], new[few], cost=1e-4)
    assert router.models_[-1] == "late"
    pred = router.predict(x[test])[:, -1]
    err_mf = np.mean((pred - new[test]) ** 2)
    err_mean = np.mean((new[few].mean() - new[test]) ** 2)
    assert err_mf < err_mean


def test_add_model_rejects_known_names() -> None:
    x, outcomes, _ = make_routing_data(n=100, seed=0)
    router = MatrixFactorizationRouter().fit(x, outcomes)
    with pytest.raises(ValueError, match="already known"):
        router.add_model("model-0", x[:5], outcomes.quality[:5, 0])


def test_cold_start_study_on_synthetic_data(tmp_path) -> None:
    from crossroads.eval.coldstart import cold_start_study
    from crossroads.eval.datasets import load_dataset
    from crossroads.eval.synthetic import make_routing_data, write_dataset

    ds = load_dataset(write_dataset(tmp_path / "syn", n=1000, n_models=5, seed=5))
    x, _, _ = make_routing_data(n=1000, n_models=5, seed=5)
    rows = cold_start_study(ds, "model-4", ks=(50,), features=x, rank=4)
    by = {r["method"]: r for r in rows}
    assert set(by) == {"mf, all train labels (ceiling)", "mf + add_model", "mean of k labels"}
    assert by["mf + add_model"]["rmse_new_model"] < by["mean of k labels"]["rmse_new_model"]
