"""Priors: the config's, an offline router's, and a new model's from its price."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossroads.exceptions import ConfigError
from crossroads.routers import Outcomes, make, save
from tests.online.support import MODELS, candidates, request, selector


def test_a_model_without_a_prior_gets_one_from_its_price() -> None:
    s = selector({"method": "linucb", "priors": {"cheap": 0.4, "strong": 0.9}})
    by_model = dict(zip(MODELS, s.priors, strict=True))
    assert by_model["cheap"].source == by_model["strong"].source == "config"
    mid = by_model["mid"]
    assert mid.source == "profile"
    assert 0.4 < mid.quality < 0.9  # between its cheaper and its dearer neighbour
    assert mid.strength == pytest.approx(s.config.prior_strength / 2)


def test_without_profile_priors_an_unknown_model_starts_cold() -> None:
    s = selector({"method": "ema", "priors": {"cheap": 0.4}, "profile_prior": False})
    assert [p.source for p in s.priors] == ["config", "none", "none"]


async def test_warm_start_from_a_router_artifact(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    quality = np.tile([0.2, 0.9, 0.5], (60, 1))
    router = make("linear").fit(x, Outcomes(MODELS, quality, np.tile([1.0, 2.0, 3.0], (60, 1))))
    artifact = save(router, tmp_path / "r.joblib", calibration={"lambda": 0.01})
    s = selector(
        {
            "method": "linucb",
            "warm_start": {"router": str(artifact), "strength": 50},
            "max_explore": 0,
        }
    )
    assert [round(p.quality, 2) for p in s.priors] == [0.2, 0.9, 0.5]
    assert s.lam == 0.01  # the artifact's calibrated trade-off when the decision sets none
    chosen = await s.aselect(request("t", "prose"), candidates())
    assert chosen.model == "mid"  # from the first request, no feedback yet


def test_a_missing_artifact_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no router artifact"):
        selector({"method": "thompson", "warm_start": {"router": str(tmp_path / "none.joblib")}})
