"""Fan-out through the gateway with the openai SDK: first, vote, judge; cancellation of the
losers; every branch's cost and latency on the trace."""

from __future__ import annotations

import openai
import pytest

from tests.plans.conftest import script


def ask(gw, text: str = "q", **body):
    raw = gw.client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": text}], **body
    )
    return raw, raw.parse(), gw.trace(raw.headers["x-crossroads-trace-id"])


def test_first_serves_the_fastest_acceptable_answer_and_cancels_the_rest(
    gateway_for, upstream
) -> None:
    gw = gateway_for({"kind": "fanout", "models": ["cheap", "cheap2", "big"], "merge": "first"})
    meta = script(
        cheap={"reply": "", "delay": 0.0},  # fastest, but empty: not acceptable
        cheap2={"reply": "second fastest", "delay": 0.2},
        big={"reply": "slow", "delay": 5.0},
    )
    raw, answer, trace = ask(gw, metadata=meta)
    assert answer.choices[0].message.content == "second fastest"
    verdicts = {s["model"]: s["verdict"] for s in trace["stages"]}
    assert verdicts == {"cheap": "lost", "cheap2": "accepted", "big": "cancelled"}
    big = next(s for s in trace["stages"] if s["model"] == "big")
    assert big["usage"]["estimated"] and big["usage"]["completion_tokens"] == 0
    assert trace["cost"] == pytest.approx(sum(s["cost"] for s in trace["stages"]))


def test_vote_serves_the_majority_and_stops_once_it_is_reached(gateway_for) -> None:
    gw = gateway_for({"kind": "fanout", "models": ["cheap", "cheap2", "big"], "merge": "vote"})
    meta = script(
        cheap={"reply": "The answer is 12."},
        cheap2={"reply": "#### 12"},
        big={"reply": "#### 13", "delay": 5.0},
    )
    raw, answer, trace = ask(gw, metadata=meta)
    assert answer.choices[0].message.content == "The answer is 12."
    verdicts = {s["model"]: s["verdict"] for s in trace["stages"]}
    assert verdicts == {"cheap": "accepted", "cheap2": "lost", "big": "cancelled"}


def test_vote_without_a_majority_serves_the_first_models_answer(gateway_for) -> None:
    gw = gateway_for({"kind": "fanout", "models": ["cheap", "cheap2"], "merge": "vote"})
    _, answer, trace = ask(
        gw, metadata=script(cheap={"reply": "#### 1"}, cheap2={"reply": "#### 2"})
    )
    assert answer.choices[0].message.content == "#### 1"
    assert "no two answers agree" in trace["stages"][0]["reason"] or any(
        "no two answers agree" in (s["reason"] or "") for s in trace["stages"]
    )


def test_judge_picks_the_answer(gateway_for, upstream) -> None:
    gw = gateway_for(
        {"kind": "fanout", "models": ["cheap", "cheap2"], "merge": "judge", "judge": "judge"}
    )
    meta = script(cheap={"reply": "answer one"}, cheap2={"reply": "answer two"})
    upstream.config.scripts = {"judge": {"reply": "2"}}  # the judge's request is the plan's own
    raw, answer, trace = ask(gw, metadata=meta)
    assert answer.choices[0].message.content == "answer two"
    assert raw.headers["x-crossroads-model"] == "cheap2"
    judge = next(s for s in trace["stages"] if s["verdict"] == "judge")
    assert judge["model"] == "judge" and judge["cost"] > 0
    assert trace["cost"] == pytest.approx(sum(s["cost"] for s in trace["stages"]))


def test_streamed_fanout(gateway_for) -> None:
    gw = gateway_for({"kind": "fanout", "models": ["cheap", "cheap2"], "merge": "vote"})
    stream = gw.client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "q"}],
        stream=True,
        metadata=script(cheap={"reply": "#### 3"}, cheap2={"reply": "#### 3"}),
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "#### 3"


def test_every_branch_failing_is_the_clients_error(gateway_for) -> None:
    gw = gateway_for(
        {"kind": "fanout", "models": ["cheap", "cheap2"], "merge": "first"},
        dispatch={"retries": {"max_attempts": 1}},
    )
    with pytest.raises(openai.APIStatusError) as caught:
        gw.client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "q"}],
            metadata=script(cheap={"fault": "503"}, cheap2={"fault": "503"}),
        )
    assert caught.value.status_code in (502, 503)
    trace = gw.trace(caught.value.response.headers["x-crossroads-trace-id"])
    assert [s["verdict"] for s in trace["stages"]] == ["error", "error"]


def test_best_of_serves_the_answer_the_verifier_rates_highest(gateway_for, tmp_path) -> None:
    from tests.plans.test_verifier import BAD, GOOD, fitted

    plan = {"kind": "fanout", "models": ["cheap", "cheap2"], "merge": "best_of"}
    gw = gateway_for({**plan, "verifier": str(fitted(tmp_path))})
    raw, answer, trace = ask(gw, metadata=script(cheap={"reply": BAD}, cheap2={"reply": GOOD}))
    assert answer.choices[0].message.content == GOOD
    served = next(s for s in trace["stages"] if s["verdict"] == "accepted")
    assert served["model"] == "cheap2" and served["score"] > 0.5
