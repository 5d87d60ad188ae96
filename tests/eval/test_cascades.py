"""Offline cascades on stored responses: curves, calibration on validation only, and the
fit-verifier artifact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crossroads.eval.cascades import evaluate_cascades, fit_verifier_artifact, report_markdown
from crossroads.plans.verifier import load_verifier


def make_dataset(root: Path, n: int = 300, seed: int = 0, scramble_test: bool = False) -> Path:
    """A cheap model that is right when its written arithmetic is right, a strong model that
    is nearly always right and 50x dearer."""
    rng = np.random.default_rng(seed)
    good = rng.random(n) < 0.6
    answers = [
        f"{i} + 1 = {i + 1}\n#### {i + 1}" if ok else f"{i} + 1 = {i + 2}\n#### {i + 2}"
        for i, ok in enumerate(good)
    ]
    frame = pd.DataFrame(
        {
            "prompt_id": [f"p{i}" for i in range(n)],
            "dataset": "synthetic",
            "task": "math",
            "split": "eval",
            "prompt": [f"what is {i} + 1?" for i in range(n)],
            "score__cheap": good.astype(float),
            "cost__cheap": 0.001,
            "score__strong": (rng.random(n) < 0.95).astype(float),
            "cost__strong": 0.05,
        }
    )
    root.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(root / "routing.parquet")
    pd.DataFrame(
        {"prompt_id": frame.prompt_id, "response__cheap": answers, "response__strong": "#### x"}
    ).to_parquet(root / "responses.parquet")
    info = {m: {"name": m, "cost_unit": "usd"} for m in ("cheap", "strong")}
    (root / "models.json").write_text(json.dumps(info))
    return root


def run(path: Path):
    n = len(pd.read_parquet(path / "routing.parquet"))
    features = np.random.default_rng(1).normal(size=(n, 8)).astype(np.float32)
    return evaluate_cascades(
        path, ["cheap"], "strong", embed=False, features=features, routers=["mean", "knn"], n_boot=5
    )


def test_a_verifier_that_reads_the_answer_beats_the_prompt(tmp_path: Path) -> None:
    report = run(make_dataset(tmp_path / "d"))
    curves = {c.name.split(": ")[1].split(" {")[0]: c for c in report.curves}
    assert {"checks", "checks + arithmetic", "verifier", "oracle acceptance"} <= set(curves)
    assert curves["verifier"].auc > 0.9  # the answer shows whether it is right
    assert curves["verifier"].aiq > report.routers["knn"]  # the prompts are noise
    assert curves["oracle acceptance"].aiq >= curves["verifier"].aiq - 1e-9
    cal = curves["verifier"].calibrated
    assert cal["test_cost_share"] < 0.8 and cal["test_quality_share"] > 0.9
    text = report_markdown(report)
    assert "prompt-only: knn" in text and "cascade cheap→strong: verifier" in text


def test_calibration_never_reads_test_outcomes(tmp_path: Path) -> None:
    first = run(make_dataset(tmp_path / "a"))
    path = make_dataset(tmp_path / "b")
    frame = pd.read_parquet(path / "routing.parquet")
    from crossroads.eval.datasets import load_dataset, split_indices

    test = split_indices(load_dataset(path))["test"]
    frame.loc[test, "score__strong"] = 1.0 - frame.loc[test, "score__strong"]
    frame.to_parquet(path / "routing.parquet")
    second = run(path)
    for a, b in zip(first.curves, second.curves, strict=True):
        assert a.calibrated["threshold"] == b.calibrated["threshold"]


def test_fit_verifier_artifact(tmp_path: Path) -> None:
    path = make_dataset(tmp_path / "d")
    found = fit_verifier_artifact(path, "cheap", "strong", tmp_path / "v.joblib", embed=False)
    assert 0 < found["val_accept_share"] < 1 and found["val_quality_share"] >= 0.95 - 1e-9
    assert load_verifier(tmp_path / "v.joblib").threshold == found["threshold"]
    with pytest.raises(ValueError, match="no prompt"):
        fit_verifier_artifact(path, "cheap", "strong", tmp_path / "w.joblib", tasks="nothing")
