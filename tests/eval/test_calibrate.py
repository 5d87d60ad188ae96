import numpy as np
import pytest

from crossroads.eval.calibrate import Target, calibrate
from crossroads.eval.synthetic import make_routing_data
from crossroads.routers import make


@pytest.fixture(scope="module")
def fitted():
    x, outcomes, _ = make_routing_data(n=1500, n_models=3, seed=4)
    train, val = np.arange(1000), np.arange(1000, 1500)
    router = make("knn").fit(x[train], outcomes.subset(train))
    return router, x[val], outcomes.subset(val)


def test_quality_target_is_met_on_calibration_data(fitted) -> None:
    router, x, outcomes = fitted
    result = calibrate(router, x, outcomes, "quality:0.95", n_boot=50)
    assert result["achieved"]["quality_share"] >= 0.95
    assert result["split"] == "val" and result["n_prompts"] == 500
    lo, hi = result["ci95"]["quality"]
    assert lo <= result["achieved"]["quality"] <= hi


def test_cost_share_target_stays_in_budget(fitted) -> None:
    router, x, outcomes = fitted
    result = calibrate(router, x, outcomes, "cost-share:0.3", n_boot=20)
    assert result["achieved"]["cost_share"] <= 0.3 + 1e-9
    chosen = router.select(x, lam=result["lambda"])
    assert len(chosen) == 500


def test_bad_targets_are_explained() -> None:
    with pytest.raises(ValueError, match="quality:<share"):
        Target.parse("accuracy:0.9")
    with pytest.raises(ValueError, match="bad calibration target"):
        Target.parse("quality:abc")


# ---------------------------------------------------------------- cascade plans


def plan_config(root, verifier, **extra_rule) -> object:
    """A config whose default decision cascades cheap → strong on a verifier."""
    import yaml

    rule = {"rule": "verifier", "verifier": str(verifier), **extra_rule}
    data = {
        "upstreams": [{"name": "up", "base_url": "http://127.0.0.1:9/v1"}],
        "models": [
            {"name": "small", "upstream": "up", "upstream_model": "cheap"},
            {"name": "strong", "upstream": "up"},
        ],
        "default": {
            "models": ["small"],
            "plan": {
                "kind": "cascade",
                "stages": [
                    {"models": ["small"], "accept": [{"rule": "checks"}, rule]},
                    {"models": ["strong"]},
                ],
            },
        },
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def plan_setup(tmp_path):
    from crossroads.eval.cascades import fit_verifier_artifact
    from tests.eval.test_cascades import make_dataset

    data = make_dataset(tmp_path / "d", n=400)
    verifier = tmp_path / "v.joblib"
    fit_verifier_artifact(data, "cheap", "strong", verifier, embed=False)
    return data, verifier, plan_config(tmp_path, verifier)


def test_a_plan_meets_a_quality_target_on_validation_and_reports_test(plan_setup) -> None:
    from crossroads.eval.calibrate import calibrate_plan

    data, _, config = plan_setup
    result = calibrate_plan(config, data, "quality:0.95", n_boot=50)
    assert set(result["thresholds"]) == {"stages[0].accept[1].threshold"}
    assert result["achieved"]["quality_share"] >= 0.95
    assert result["best_single"] == "strong" and result["models"]["small"] == "cheap"
    assert result["left_out_verifier_training_rows"] == 0  # it learned from train rows only
    test = result["test"]
    assert test["n_prompts"] == 120 and 0 < test["answered_by_stage"][0] < 1
    assert test["cost_share"] < 0.8  # the verifier reads right and wrong arithmetic
    lo, hi = test["ci95"]["quality_share"]
    assert lo <= test["quality_share"] <= hi
    assert test["meets_target"] == (test["quality_share"] >= 0.95)
    (rule,) = [r for r in result["plan"]["plan"]["stages"][0]["accept"] if r["rule"] == "verifier"]
    assert rule["threshold"] == result["thresholds"]["stages[0].accept[1].threshold"]


def test_a_cost_target_holds_on_validation(plan_setup) -> None:
    from crossroads.eval.calibrate import calibrate_plan

    data, _, config = plan_setup
    result = calibrate_plan(config, data, "cost-share:0.3", n_boot=10)
    assert result["achieved"]["cost_share"] <= 0.3 + 1e-9
    tight = calibrate_plan(config, data, "quality:0.99", n_boot=10)
    loose = calibrate_plan(config, data, "quality:0.8", n_boot=10)
    t = "stages[0].accept[1].threshold"
    assert tight["thresholds"][t] >= loose["thresholds"][t]


def test_plan_thresholds_never_read_test_outcomes(plan_setup) -> None:
    import pandas as pd

    from crossroads.eval.calibrate import calibrate_plan
    from crossroads.eval.datasets import load_dataset, split_indices

    data, _, config = plan_setup
    first = calibrate_plan(config, data, "quality:0.95", n_boot=10)
    frame = pd.read_parquet(data / "routing.parquet")
    test = split_indices(load_dataset(data))["test"]
    frame.loc[test, "score__strong"] = 1.0 - frame.loc[test, "score__strong"]
    frame.loc[test, "score__cheap"] = 1.0 - frame.loc[test, "score__cheap"]
    frame.to_parquet(data / "routing.parquet")
    second = calibrate_plan(config, data, "quality:0.95", n_boot=10)
    assert first["thresholds"] == second["thresholds"]
    assert first["test"]["quality"] != second["test"]["quality"]
    with pytest.raises(ValueError, match="leak"):
        calibrate_plan(config, data, "quality:0.95", split="test")


def test_rows_a_verifier_learned_from_are_left_out(tmp_path) -> None:
    from crossroads.eval.calibrate import calibrate_plan
    from crossroads.eval.cascades import fit_verifier_artifact
    from crossroads.plans.verifier import load_verifier
    from tests.eval.test_cascades import make_dataset

    data = make_dataset(tmp_path / "d", n=400)
    verifier = tmp_path / "v.joblib"
    fit_verifier_artifact(data, "cheap", "strong", verifier, embed=False, seed=1)
    trained = set(load_verifier(verifier).train_ids_)
    assert len(trained) == 220
    result = calibrate_plan(plan_config(tmp_path, verifier), data, "quality:0.9", n_boot=10)
    # Under seed 0, part of seed 1's training rows fall in validation and test.
    assert result["left_out_verifier_training_rows"] > 0
    assert result["n_prompts"] + result["test"]["n_prompts"] < 60 + 120
