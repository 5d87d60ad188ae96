from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from crossroads.signals.cli import register
from crossroads.signals.heads import load_head
from tests.signals.conftest import build, request

app = typer.Typer()
register(app)
runner = CliRunner()

LABELS = {
    "billing": [
        "my invoice is wrong",
        "refund my last payment",
        "I was charged twice",
        "update my credit card",
        "why did my bill go up",
        "cancel the subscription fee",
        "send me a receipt",
        "payment failed again",
    ],
    "shipping": [
        "where is my parcel",
        "the package arrived damaged",
        "track my order",
        "delivery is late",
        "change my delivery address",
        "courier never came",
        "how long does shipping take",
        "my box was left outside",
    ],
    "login": [
        "I forgot my password",
        "the app logs me out",
        "two factor code never arrives",
        "my account is locked",
        "cannot sign in with google",
        "reset my username",
        "login page shows an error",
        "how do I change my password",
    ],
}


def _labels_file(tmp_path: Path) -> Path:
    rows = []
    for label, texts in LABELS.items():
        for i, text in enumerate(texts):
            split = "test" if i >= 6 else "val" if i == 5 else "train"
            rows.append(json.dumps({"text": text, "label": label, "split": split}))
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.usefixtures("minilm")
async def test_train_domain_on_your_labels_and_use_the_head(tmp_path: Path) -> None:
    out, report = tmp_path / "support.npz", tmp_path / "report.json"
    data = _labels_file(tmp_path)
    result = runner.invoke(app, f"signals train domain --data {data} --out {out} --report {report}")
    assert result.exit_code == 0, result.output
    written = json.loads(report.read_text())
    assert written["rows"] == {"train": 15, "val": 3, "test": 6}
    assert written["test"]["accuracy"] >= 0.8
    assert sorted(load_head(out).labels) == sorted(LABELS)
    signal = build("domain", model=str(out), labels=["shipping"])
    (parcel,) = await signal.evaluate([request("my parcel has not arrived yet")])
    assert parcel.value == "shipping" and parcel.matched


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["signals", "train", "sentiment"])
    assert result.exit_code != 0 and "domain, complexity or jailbreak" in result.output
    result = runner.invoke(
        app, f"signals train domain --data {tmp_path}/none.jsonl --out {tmp_path}/h.npz"
    )
    assert result.exit_code == 1 and "no labelled data" in result.output
