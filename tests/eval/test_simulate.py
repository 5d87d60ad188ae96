"""The replay simulator: a stream through the real online selectors, regret against the oracle
and against offline routers fitted on the prefix, and its report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import typer
from typer.testing import CliRunner

from crossroads.eval.cli import register
from crossroads.eval.datasets import load_dataset
from crossroads.eval.simulate import default_lambda, simulate
from crossroads.eval.synthetic import write_dataset


def _topics(path: Path, n: int = 1500) -> Path:
    """A synthetic dataset whose best model depends on the prompt's topic (the task)."""
    return write_dataset(path, n=n, n_models=3, seed=1)


def test_online_selectors_learn_from_the_stream(tmp_path: Path) -> None:
    ds = load_dataset(_topics(tmp_path / "syn"))
    x = pd.get_dummies(pd.Series(ds.tasks)).to_numpy(dtype=np.float32)
    result = simulate(ds, ("linucb", "ema"), features=x, delay=5, noise=0.1, routers=("linear",))
    names = [p.name for p in result.policies]
    assert names[:3] == ["oracle", names[1], "random"] and names[1].startswith("single:")
    assert {"offline:linear", "linucb", "linucb+warm", "ema"} <= set(names)
    random = result.summary(result.policy("random"))
    for name in ("linucb", "linucb+warm"):
        s = result.summary(result.policy(name))
        assert s["regret_oracle"] < random["regret_oracle"] / 2
        # The regret of the second half grows slower than that of the first.
        p = result.policy(name)
        half = len(p.reward) // 2
        gap = result.oracle - p.reward
        assert gap[half:].sum() < gap[:half].sum()
    assert 0 < result.policy("linucb").detail["mean_propensity"] <= 1
    assert result.summary(result.policy("oracle"))["regret_oracle"] == 0


def test_the_replay_is_reproducible_with_a_seed(tmp_path: Path) -> None:
    ds = load_dataset(_topics(tmp_path / "syn", n=300))
    x = pd.get_dummies(pd.Series(ds.tasks)).to_numpy(dtype=np.float32)
    runs = [
        simulate(ds, ("thompson",), features=x, seed=4, routers=(), warm_start=False)
        for _ in range(2)
    ]
    assert np.array_equal(runs[0].policy("thompson").choices, runs[1].policy("thompson").choices)
    other = simulate(ds, ("thompson",), features=x, seed=5, routers=(), warm_start=False)
    assert not np.array_equal(runs[0].policy("thompson").choices, other.policy("thompson").choices)


def test_missing_feedback_means_fewer_observations(tmp_path: Path) -> None:
    ds = load_dataset(_topics(tmp_path / "syn", n=300))
    x = pd.get_dummies(pd.Series(ds.tasks)).to_numpy(dtype=np.float32)
    full = simulate(ds, ("ema",), features=x, routers=(), warm_start=False)
    half = simulate(ds, ("ema",), features=x, routers=(), warm_start=False, missing=0.5)
    assert full.policy("ema").detail["observed"] == 300
    assert 100 < half.policy("ema").detail["observed"] < 200


def test_default_lambda_is_half_the_slope_from_cheapest_to_best() -> None:
    quality = np.array([[0.2, 0.8], [0.4, 1.0]])
    cost = np.array([[1.0, 3.0], [1.0, 3.0]])
    assert default_lambda(quality, cost) == 0.5 * 0.6 / 2.0
    assert default_lambda(quality[:, ::-1] * 0 + [[0.9, 0.1]], cost) == 0.0


def test_the_command_writes_a_report(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    data = _topics(tmp_path / "syn", n=400)
    df = pd.read_parquet(data / "routing.parquet")
    df["prompt"] = ""  # no text: the task one-hot is the feature
    df.to_parquet(data / "routing.parquet")
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--data",
            str(data),
            "--selector",
            "linucb",
            "--delay",
            "3",
            "--routers",
            "linear",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "| linucb | online |" in result.output
    summary = json.loads((out / "syn.json").read_text())
    assert summary["settings"]["delay"] == 3
    assert {"linucb", "linucb+warm", "offline:linear"} <= set(summary["policies"])
    page = (out / "index.html").read_text()
    assert "syn.png" in page and (out / "syn.png").stat().st_size > 1000
    bad = CliRunner().invoke(app, ["simulate", "--data", str(data), "--selector", "ucb"])
    assert bad.exit_code != 0 and "unknown selector" in bad.output


def test_under_drift_the_online_selector_beats_the_router_fitted_before_it(tmp_path: Path) -> None:
    ds = load_dataset(_topics(tmp_path / "syn"))
    x = pd.get_dummies(pd.Series(ds.tasks)).to_numpy(dtype=np.float32)
    result = simulate(ds, ("linucb",), features=x, drift=0.8, routers=("linear",), seed=2)
    assert result.settings["drifted_model"] in ds.outcomes.models
    online = result.summary(result.policy("linucb"))
    assert online["regret_offline_after"] < 0  # negative: more reward than the router
    steady = simulate(ds, ("linucb",), features=x, routers=("linear",), seed=2)
    assert steady.summary(steady.policy("linucb"))["regret_offline_after"] > 0
