"""``crossroads dataset export``: traces with feedback become a routing dataset the loaders
read and ``crossroads fit`` fits on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from crossroads.eval.cli import register
from crossroads.eval.datasets import load_dataset
from crossroads.routers import load_artifact
from crossroads.store.sqlite import SQLiteTraceStore
from crossroads.types import Candidate, Feedback, Route, Trace, Usage

app = typer.Typer()
register(app)
runner = CliRunner()
T0 = 1_700_000_000.0


def traced(i: int, model: str, decision: str, *, status: int = 200, prompt: str = "") -> Trace:
    return Trace(
        trace_id=f"t{i:05d}",
        created_at=T0 + i,
        requested_model="auto",
        operation="chat",
        stream=False,
        route=Route(
            model=model,
            decision=decision,
            selection="weighted",
            candidates=[Candidate("small", 0.001), Candidate("big", 0.02)],
            propensity=0.5,
        ),
        model=model,
        usage=Usage(100, 50),
        cost=0.0015 if model == "small" else 0.03,
        status=status,
        prompt=prompt or None,
    )


@pytest.fixture
def store(tmp_path: Path) -> SQLiteTraceStore:
    """200 traces: code goes well on big, chat on small; every trace but the last graded."""
    made = SQLiteTraceStore(tmp_path / "traces.db", flush_interval_ms=5)
    made.start()
    rng = np.random.default_rng(0)
    for i in range(200):
        decision = "code" if i % 2 else "chat"
        model = "big" if rng.random() < 0.5 else "small"
        made.record(traced(i, model, decision))
        good = (decision == "code") == (model == "big")
        if i < 199:
            made.add_feedback(Feedback(f"t{i:05d}", 0.9 if good else 0.2, created_at=T0 + i))
    made.record(traced(500, "big", "code", status=502))
    made.add_feedback(Feedback("t00500", 1.0, created_at=T0 + 500))
    made.add_feedback(Feedback("t00002", 0.0, source="grader", created_at=T0 + 2))
    made.flush()
    yield made
    made.close()


def test_export_round_trips_through_the_loader_and_fit(
    store: SQLiteTraceStore, tmp_path: Path
) -> None:
    out = tmp_path / "mine"
    result = runner.invoke(
        app, ["dataset", "export", "--traces", str(store.path), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["rows"] == 199 and meta["skipped"]["failed"] == 1
    ds = load_dataset(out)
    assert ds.outcomes.models == ["big", "small"] and len(ds) == 199
    assert not ds.has_text  # no prompts kept: routers learn per decision
    row = list(ds.prompt_ids).index("t00001")
    served = store.get("t00001")["model"]
    other = "small" if served == "big" else "big"
    q = dict(zip(ds.outcomes.models, ds.outcomes.quality[row], strict=True))
    c = dict(zip(ds.outcomes.models, ds.outcomes.cost[row], strict=True))
    assert math.isnan(q[other]) and q[served] in (0.9, 0.2)
    assert c[served] == (0.03 if served == "big" else 0.0015)  # actual
    assert c[other] == (0.02 if other == "big" else 0.001)  # estimated at routing time
    two = list(ds.prompt_ids).index("t00002")  # a chat trace graded by client and grader
    client = 0.9 if store.get("t00002")["model"] == "small" else 0.2
    assert np.nanmax(ds.outcomes.quality[two]) == pytest.approx((client + 0.0) / 2)
    artifact = tmp_path / "r.joblib"
    fitted = runner.invoke(
        app, ["fit", "--data", str(out), "--router", "linear", "--out", str(artifact)]
    )
    assert fitted.exit_code == 0, fitted.output
    router = load_artifact(artifact)["router"]
    tasks = sorted(set(ds.tasks))  # one-hot of the decision, in sorted order
    code = np.eye(len(tasks), dtype=np.float32)[[tasks.index("code")]]
    chat = np.eye(len(tasks), dtype=np.float32)[[tasks.index("chat")]]
    big, small = router.models_.index("big"), router.models_.index("small")
    assert router.predict(code)[0, big] > router.predict(code)[0, small]  # learned the loop
    assert router.predict(chat)[0, small] > router.predict(chat)[0, big]


def test_a_source_filter_and_kept_prompts(store: SQLiteTraceStore, tmp_path: Path) -> None:
    from crossroads.eval.export import export_dataset

    store.record(traced(900, "small", "chat", prompt="hello there"))
    store.flush()
    store.add_feedback(Feedback("t00900", 1.0, source="grader", created_at=T0 + 900))
    meta = export_dataset(store, tmp_path / "graded", source="grader")
    assert meta["rows"] == 2 and meta["with_prompt_text"] == 1
    import pandas as pd

    frame = pd.read_parquet(tmp_path / "graded" / "routing.parquet")
    assert list(frame["prompt_id"]) == ["t00002", "t00900"]
    assert list(frame["prompt"]) == ["", "hello there"]
    assert list(frame["feedback_sources"]) == ["grader", "grader"]


def test_nothing_to_export_is_a_clear_error(tmp_path: Path) -> None:
    empty = SQLiteTraceStore(tmp_path / "empty.db")
    empty.start()
    empty.close()
    result = runner.invoke(
        app,
        ["dataset", "export", "--traces", str(tmp_path / "empty.db"), "--out", str(tmp_path / "x")],
    )
    assert result.exit_code != 0 and "no trace with feedback" in result.output
