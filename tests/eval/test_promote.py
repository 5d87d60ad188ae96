"""``crossroads promote`` on synthetic logged traffic: a clearly better candidate is promoted
(the link switched), a clearly worse or an indistinguishable one is not, and deterministic
logging says why it cannot tell."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from crossroads.eval.cli import register
from crossroads.eval.promote import compare, logged_choices, promote, switch_pointer
from crossroads.exceptions import CrossroadsError
from crossroads.store.memory import MemoryTraceStore
from crossroads.types import Candidate, Feedback, Route, ShadowChoice, Trace

app = typer.Typer()
register(app)
runner = CliRunner()
# Expected reward of each model per task: big is good at code, small at chat.
QUALITY = {
    ("code", "big"): 0.9,
    ("code", "small"): 0.3,
    ("chat", "big"): 0.4,
    ("chat", "small"): 0.8,
}
Policy = Callable[[int, str], str]
POLICIES: dict[str, Policy] = {
    "better": lambda i, task: "big" if task == "code" else "small",  # 0.85 vs the logged 0.6
    "worse": lambda i, task: "small" if task == "code" else "big",  # 0.35
    # each model on half of each task, whatever the prompt: 0.6, as the logged traffic
    "same": lambda i, task: "big" if (i // 2) % 2 else "small",
}


def artifacts(tmp_path: Path) -> tuple[Path, Path]:
    """``live.joblib`` (a link to live-v1) and a candidate file (contents do not matter:
    choices come from the traces' shadow records)."""
    (tmp_path / "live-v1.joblib").write_bytes(b"v1")
    (tmp_path / "candidate.joblib").write_bytes(b"v2")
    live = tmp_path / "live.joblib"
    live.symlink_to("live-v1.joblib")
    return live, tmp_path / "candidate.joblib"


def logged(
    candidate: Path, policy: Policy, *, n: int = 1200, uniform: bool = True, seed: int = 0
) -> list[tuple[dict[str, Any], list[Feedback]]]:
    """Traffic logged by a uniform random choice (propensity 0.5), or by always choosing
    big (deterministic), with Bernoulli rewards; the candidate ran as the shadow."""
    import orjson

    rng = np.random.default_rng(seed)
    store = MemoryTraceStore()
    for i in range(n):
        task = "code" if i % 2 else "chat"
        served = ("big" if rng.random() < 0.5 else "small") if uniform else "big"
        trace = Trace(
            f"t{i:05d}",
            1_700_000_000.0 + i,
            "auto",
            "chat",
            False,
            route=Route(
                served,
                "auto",
                "weighted" if uniform else "first",
                candidates=[Candidate("big"), Candidate("small")],
                propensity=0.5 if uniform else 1.0,
                shadow=ShadowChoice(str(candidate.resolve()), policy(i, task)),
            ),
            model=served,
        )
        store.record(trace)
        reward = float(rng.random() < QUALITY[(task, served)])
        store.add_feedback(Feedback(trace.trace_id, reward))
    labeled = store.labeled()
    assert orjson.dumps(labeled[0][0])  # plain data, as any store returns
    return labeled


def test_a_clearly_better_candidate_is_promoted_and_the_link_switched(tmp_path: Path) -> None:
    live, candidate = artifacts(tmp_path)
    verdict = promote(logged(candidate, POLICIES["better"]), live, candidate)
    assert verdict.promote, verdict.lines()
    assert verdict.lower is not None and verdict.lower > 0
    assert verdict.candidate_value == pytest.approx(0.85, abs=0.05)
    assert verdict.live_value == pytest.approx(0.6, abs=0.05)
    assert live.is_symlink() and live.resolve() == candidate.resolve()
    assert live.read_bytes() == b"v2"


@pytest.mark.parametrize("policy", ["worse", "same"])
def test_a_worse_or_indistinguishable_candidate_is_not(tmp_path: Path, policy: str) -> None:
    live, candidate = artifacts(tmp_path)
    verdict = promote(logged(candidate, POLICIES[policy]), live, candidate)
    assert not verdict.promote, verdict.lines()
    assert verdict.lower is not None and verdict.lower <= 0
    if policy == "same":
        assert verdict.upper is not None and verdict.upper > 0  # the interval spans 0
    assert live.resolve() == (tmp_path / "live-v1.joblib").resolve()


def test_deterministic_logging_uses_only_the_agreement_subset_and_says_so(
    tmp_path: Path,
) -> None:
    live, candidate = artifacts(tmp_path)
    rows, skipped = logged_choices(logged(candidate, POLICIES["better"], uniform=False), candidate)
    verdict = compare(rows, skipped=skipped)
    assert verdict.deterministic and not verdict.promote
    assert verdict.matched == 600  # the code half, where the candidate also picks big
    assert any("only the agreement subset" in line for line in verdict.lines())


def test_traces_without_the_candidates_choice_or_with_a_fallback_are_left_out(
    tmp_path: Path,
) -> None:
    _, candidate = artifacts(tmp_path)
    labeled = logged(candidate, POLICIES["better"], n=10)
    labeled[0][0]["route"]["shadow"]["artifact"] = str(tmp_path / "another.joblib")
    labeled[1][0]["model"] = "elsewhere"  # answered by a fallback, not the logged choice
    labeled[2][0]["route"]["propensity"] = None
    rows, skipped = logged_choices(labeled, candidate)
    assert len(rows) == 7
    assert (skipped["no_candidate_choice"], skipped["fallback"], skipped["no_propensity"]) == (
        1,
        1,
        1,
    )


def test_the_live_artifact_must_be_a_link(tmp_path: Path) -> None:
    plain = tmp_path / "plain.joblib"
    plain.write_bytes(b"x")
    (tmp_path / "c.joblib").write_bytes(b"y")
    with pytest.raises(CrossroadsError, match="not a symbolic link"):
        switch_pointer(plain, tmp_path / "c.joblib")


def test_the_command_exits_3_when_it_keeps_the_live_router(tmp_path: Path) -> None:
    from crossroads.store.sqlite import SQLiteTraceStore

    live, candidate = artifacts(tmp_path)
    store = SQLiteTraceStore(tmp_path / "t.db", flush_interval_ms=5)
    store.start()
    for trace, feedback in logged(candidate, POLICIES["worse"], n=400):
        store.record(_trace_of(trace))
        for f in feedback:
            store.add_feedback(f)
    store.flush()
    store.close()
    args = ["promote", "--traces", str(tmp_path / "t.db"), "--live", str(live)]
    kept = runner.invoke(app, [*args, "--candidate", str(candidate)])
    assert kept.exit_code == 3, kept.output
    assert "keep the live router" in kept.output and "SNIPS" in kept.output


def _trace_of(data: dict[str, Any]) -> Trace:
    route = dict(data["route"])
    route["candidates"] = [Candidate(**c) for c in route["candidates"]]
    route["shadow"] = ShadowChoice(**route["shadow"])
    fields = {k: v for k, v in data.items() if k != "route"}
    return Trace(**fields, route=Route(**route))
