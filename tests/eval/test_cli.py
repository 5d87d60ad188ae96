import json

import numpy as np
import pandas as pd
import typer
from typer.testing import CliRunner

from crossroads.eval.cli import register
from crossroads.eval.synthetic import write_dataset
from crossroads.routers import load_artifact

app = typer.Typer()
register(app)
runner = CliRunner()


def _textless(path):
    """A synthetic dataset without prompt text: routers see task one-hot features."""
    write_dataset(path, n=300)
    df = pd.read_parquet(path / "routing.parquet")
    df["prompt"] = ""
    df.to_parquet(path / "routing.parquet")
    return path


def test_commands_are_registered() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("eval", "fit", "calibrate"):
        assert name in result.output


def test_eval_writes_a_report(tmp_path) -> None:
    data = _textless(tmp_path / "syn")
    result = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(data),
            "--routers",
            "mean,cluster",
            "--out",
            str(tmp_path / "rep"),
            "--bootstrap",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "| cluster | learned |" in result.output
    report = json.loads((tmp_path / "rep" / "syn.json").read_text())
    assert report["features"].startswith("task-one-hot")
    assert (tmp_path / "rep" / "index.html").is_file()


def test_fit_then_calibrate(tmp_path) -> None:
    data = _textless(tmp_path / "syn")
    art = tmp_path / "art.joblib"
    result = runner.invoke(
        app,
        [
            "fit",
            "--data",
            str(data),
            "--router",
            "knn",
            "--out",
            str(art),
            "--param",
            "n_neighbors=7",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = load_artifact(art)
    assert payload["router"].n_neighbors == 7 and payload["meta"]["fit_split"] == "train"
    result = runner.invoke(app, ["calibrate", str(art), "--target", "quality:0.9"])
    assert result.exit_code == 0, result.output
    calibration = load_artifact(art)["calibration"]
    assert calibration["split"] == "val" and calibration["achieved"]["quality_share"] >= 0.9
    assert np.isfinite(calibration["lambda"]) or calibration["lambda"] == float("inf")


def test_calibrating_on_test_is_refused(tmp_path) -> None:
    data = _textless(tmp_path / "syn")
    art = tmp_path / "art.joblib"
    runner.invoke(app, ["fit", "--data", str(data), "--router", "mean", "--out", str(art)])
    result = runner.invoke(
        app, ["calibrate", str(art), "--target", "quality:0.9", "--split", "test"]
    )
    assert result.exit_code != 0
    assert "leak" in result.output


def test_the_cli_prints_or_writes_the_calibrated_plan(tmp_path) -> None:
    import yaml

    from crossroads.config import load_config
    from crossroads.eval.cascades import fit_verifier_artifact
    from tests.eval.test_calibrate import plan_config
    from tests.eval.test_cascades import make_dataset

    data = make_dataset(tmp_path / "d", n=400)
    fit_verifier_artifact(data, "cheap", "strong", tmp_path / "v.joblib", embed=False)
    config = plan_config(tmp_path, tmp_path / "v.joblib")
    args = ["calibrate", str(config), "--target", "quality:0.95", "--data", str(data)]
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.output
    assert "# decision default:" in shown.output and "threshold:" in shown.output
    before = config.read_text()
    written = runner.invoke(app, [*args, "--write"])
    assert written.exit_code == 0, written.output
    assert config.read_text() != before
    rule = yaml.safe_load(config.read_text())["default"]["plan"]["stages"][0]["accept"][1]
    assert 0 <= rule["threshold"] <= 1
    assert load_config(config).default_decision.plan is not None
    bad = runner.invoke(app, [*args, "--decision", "nope"])
    assert bad.exit_code != 0 and "has no cascade plan" in bad.output


def test_the_cascade_behind_a_cache_is_calibrated_in_place(tmp_path) -> None:
    import yaml

    from crossroads.config import load_config
    from crossroads.eval.cascades import fit_verifier_artifact
    from tests.eval.test_calibrate import plan_config
    from tests.eval.test_cascades import make_dataset

    data = make_dataset(tmp_path / "d", n=400)
    fit_verifier_artifact(data, "cheap", "strong", tmp_path / "v.joblib", embed=False)
    config = plan_config(tmp_path, tmp_path / "v.joblib")
    raw = yaml.safe_load(config.read_text())
    cascade = raw["default"]["plan"]
    raw["default"]["plan"] = {"kind": "cache", "exact_only": True, "then": cascade}
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    args = ["calibrate", str(config), "--target", "cost-share:0.3", "--data", str(data)]
    result = runner.invoke(app, [*args, "--write"])
    assert result.exit_code == 0, result.output
    plan = load_config(config).default_decision.plan
    assert plan.kind == "cache" and plan.exact_only
    assert plan.then.stages[0].accept[1].threshold is not None
