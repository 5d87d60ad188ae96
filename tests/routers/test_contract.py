"""The router contract, checked for every registered router."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone

from crossroads.eval.synthetic import make_routing_data
from crossroads.exceptions import NotFittedError
from crossroads.routers import Outcomes, available, load, load_artifact, make, save

ROUTERS = sorted(available())


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, Outcomes]:
    x, outcomes, _ = make_routing_data(n=300, n_models=3, seed=1)
    return x, outcomes


@pytest.mark.parametrize("name", ROUTERS)
def test_constructor_stores_params_only(name: str) -> None:
    router = make(name)
    params = router.get_params()
    assert not [k for k in vars(router) if k.endswith("_")]
    assert set(params) <= set(vars(router))


@pytest.mark.parametrize("name", ROUTERS)
def test_fit_returns_self_and_predict_shape(name: str, data: tuple[np.ndarray, Outcomes]) -> None:
    x, outcomes = data
    router = make(name)
    assert router.fit(x[:200], outcomes.subset(np.arange(200))) is router
    pred = router.predict(x[200:])
    assert pred.shape == (100, 3)
    assert np.isfinite(pred).all()
    assert router.predict_cost(x[200:]).shape == (100, 3)
    assert router.models_ == outcomes.models


@pytest.mark.parametrize("name", ROUTERS)
def test_not_fitted_error_is_instructive(name: str, data: tuple[np.ndarray, Outcomes]) -> None:
    with pytest.raises(NotFittedError, match=r"not fitted yet\. Call fit"):
        make(name).predict(data[0][:2])


@pytest.mark.parametrize("name", ROUTERS)
def test_select_returns_a_candidate(name: str, data: tuple[np.ndarray, Outcomes]) -> None:
    x, outcomes = data
    router = make(name).fit(x, outcomes)
    chosen = router.select(x[:20], lam=100.0)
    assert set(chosen) <= set(outcomes.models)
    only = router.select(x[:20], lam=0.0, candidates=[2])
    assert only == ["model-2"] * 20
    assert router.select(x[:5], lam=float("inf")) == ["model-0"] * 5  # cheapest


@pytest.mark.parametrize("name", ROUTERS)
def test_clone_and_set_params(name: str, data: tuple[np.ndarray, Outcomes]) -> None:
    router = make(name).fit(*data)
    twin = clone(router)
    assert not hasattr(twin, "models_")
    assert twin.get_params() == router.get_params()
    key = next(iter(router.get_params()), None)
    if key is not None:
        assert twin.set_params(**{key: router.get_params()[key]}) is twin


@pytest.mark.parametrize("name", ROUTERS)
def test_save_load_round_trip(name: str, data: tuple[np.ndarray, Outcomes], tmp_path) -> None:
    x, outcomes = data
    router = make(name).fit(x, outcomes)
    path = save(router, tmp_path / f"{name}.joblib", name=name, calibration={"lambda": 1.0})
    again = load(path)
    np.testing.assert_allclose(again.predict(x[:30]), router.predict(x[:30]))
    payload = load_artifact(path)
    assert payload["format_version"] == 1 and payload["router_name"] == name
    assert payload["calibration"] == {"lambda": 1.0}
    pickle.dumps(again)


@pytest.mark.parametrize("name", ROUTERS)
def test_fit_tolerates_missing_outcomes(name: str, data: tuple[np.ndarray, Outcomes]) -> None:
    x, outcomes = data
    quality = outcomes.quality.copy()
    quality[::7, 1] = np.nan
    router = make(name).fit(x, Outcomes(outcomes.models, quality, outcomes.cost))
    assert np.isfinite(router.predict(x[:10])).all()


def test_mismatched_rows_are_refused(data: tuple[np.ndarray, Outcomes]) -> None:
    x, outcomes = data
    with pytest.raises(ValueError, match="must match"):
        make("knn").fit(x[:10], outcomes)


@pytest.mark.parametrize(
    "name", ["knn", "mlp", "logistic", "pairwise", "mf", "bt", "cluster", "ensemble"]
)
def test_learned_router_beats_prompt_free_mean(name: str) -> None:
    """On data with topic structure, reading the prompt must help (AIQ on held-out rows)."""
    from crossroads.eval.metrics import summarize
    from crossroads.routers import lambda_grid, select

    x, outcomes, _ = make_routing_data(n=1200, n_models=3, seed=2)
    train, test = np.arange(900), np.arange(900, 1200)
    q, c = outcomes.quality[test], outcomes.cost[test]

    def score(router_name: str) -> float:
        router = make(router_name).fit(x[train], outcomes.subset(train))
        pq, pc = router.predict(x[test]), router.predict_cost(x[test])
        choices = np.stack([select(pq, pc, lam=lam) for lam in lambda_grid(pq, pc)])
        return summarize(q, c, choices)["aiq"]

    assert score(name) > score("mean") + 0.02


def test_bradley_terry_warm_start_reaches_the_same_strengths() -> None:
    from crossroads.routers.bt import bradley_terry

    rng = np.random.default_rng(0)
    wins = rng.uniform(0, 5, size=(3, 5, 5))
    cold = bradley_terry(wins, 500)
    warm = bradley_terry(wins, 500, start=rng.uniform(0.5, 2, size=5), tol=1e-10)
    np.testing.assert_allclose(warm, cold, atol=1e-6)
