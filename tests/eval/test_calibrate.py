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
