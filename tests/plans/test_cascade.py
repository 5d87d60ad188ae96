"""Cascades through the gateway, with the official openai SDK, against the scripted fake
upstream: JSON and streaming, tool calls and JSON mode, and the trace of every stage."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.plans.conftest import PRICES, script

AGREE = {
    "kind": "cascade",
    "stages": [
        {
            "models": ["cheap", "cheap2"],
            "accept": [{"rule": "checks"}, {"rule": "agreement"}],
        },
        {"models": ["big"]},
    ],
}
CONFIDENT = {
    "kind": "cascade",
    "stages": [
        {
            "models": ["cheap"],
            "accept": [{"rule": "checks"}, {"rule": "confidence", "threshold": -0.5}],
        },
        {"models": ["big"]},
    ],
}
CHECKS = {
    "kind": "cascade",
    "stages": [{"models": ["cheap"], "accept": [{"rule": "checks"}]}, {"models": ["big"]}],
}


def ask(gw: Any, text: str = "What is 6 x 7?", **body: Any) -> Any:
    raw = gw.client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": text}], **body
    )
    return raw, raw.parse()


def cost(model: str, prompt: int, completion: int) -> float:
    i, o = PRICES[model]
    return (prompt * i + completion * o) / 1e6


def test_agreeing_cheap_answers_are_served_and_both_are_paid_for(gateway_for) -> None:
    gw = gateway_for(AGREE)
    meta = script(cheap={"reply": "6 x 7 = 42. #### 42"}, cheap2={"reply": "The answer is 42."})
    raw, answer = ask(gw, metadata=meta)
    assert answer.choices[0].message.content == "6 x 7 = 42. #### 42"
    assert raw.headers["x-crossroads-model"] == "cheap"
    trace = gw.trace(raw.headers["x-crossroads-trace-id"])
    assert trace["plan"] == "cascade"
    stages = {s["model"]: s for s in trace["stages"]}
    assert set(stages) == {"cheap", "cheap2"}  # the big model was never called
    assert stages["cheap"]["verdict"] == "accepted" and stages["cheap2"]["verdict"] == "lost"
    assert stages["cheap"]["score"] == 1.0  # both agree
    # Settlement sums every call: both cheap answers were paid for.
    expected = sum(
        cost(s["model"], s["usage"]["prompt_tokens"], s["usage"]["completion_tokens"])
        for s in trace["stages"]
    )
    assert trace["cost"] == pytest.approx(expected)
    assert trace["cost"] > cost("cheap", *_tokens(stages["cheap"]))
    assert trace["usage"]["completion_tokens"] == sum(
        s["usage"]["completion_tokens"] for s in trace["stages"]
    )
    # The client reads the answering call's own usage.
    assert answer.usage.completion_tokens == stages["cheap"]["usage"]["completion_tokens"]


def _tokens(stage: dict[str, Any]) -> tuple[int, int]:
    return stage["usage"]["prompt_tokens"], stage["usage"]["completion_tokens"]


def test_disagreement_escalates_to_the_big_model(gateway_for) -> None:
    gw = gateway_for(AGREE)
    meta = script(
        cheap={"reply": "#### 41"}, cheap2={"reply": "#### 42"}, big={"reply": "It is 42."}
    )
    raw, answer = ask(gw, metadata=meta)
    assert answer.choices[0].message.content == "It is 42."
    assert raw.headers["x-crossroads-model"] == "big"
    trace = gw.trace(raw.headers["x-crossroads-trace-id"])
    verdicts = [(s["stage"], s["model"], s["verdict"]) for s in trace["stages"]]
    assert sorted(verdicts) == [
        (0, "cheap", "rejected"),
        (0, "cheap2", "rejected"),
        (1, "big", "accepted"),
    ]
    rejected = [s for s in trace["stages"] if s["verdict"] == "rejected"]
    assert all("agreement" in s["reason"] for s in rejected)
    assert trace["model"] == "big"
    assert trace["cost"] == pytest.approx(sum(s["cost"] for s in trace["stages"]))
    assert all(s["latency_ms"] > 0 for s in trace["stages"])


def test_a_refusal_fails_the_checks_and_escalates(gateway_for) -> None:
    gw = gateway_for(CHECKS)
    meta = script(
        cheap={"reply": "I'm sorry, but I can't help with that."}, big={"reply": "Sure: 42."}
    )
    raw, answer = ask(gw, metadata=meta)
    assert answer.choices[0].message.content == "Sure: 42."
    trace = gw.trace(raw.headers["x-crossroads-trace-id"])
    assert trace["stages"][0]["reason"].startswith("refusal")


def test_an_answer_cut_at_max_tokens_escalates(gateway_for) -> None:
    gw = gateway_for(CHECKS)
    meta = script(cheap={"reply": "one two three four five six"}, big={"reply": "short"})
    raw, answer = ask(gw, metadata=meta, max_tokens=3)
    assert answer.choices[0].message.content == "short"
    trace = gw.trace(raw.headers["x-crossroads-trace-id"])
    assert trace["stages"][0]["reason"].startswith("truncated")


def test_confidence_asks_for_logprobs_and_hides_them_from_the_client(gateway_for, upstream) -> None:
    gw = gateway_for(CONFIDENT)
    raw, answer = ask(gw, metadata=script(cheap={"reply": "42", "logprob": -0.01}))
    assert raw.headers["x-crossroads-model"] == "cheap"
    assert answer.choices[0].logprobs is None  # the client did not ask for them
    trace = gw.trace(raw.headers["x-crossroads-trace-id"])
    assert trace["stages"][0]["score"] == pytest.approx(-0.01)

    raw, answer = ask(
        gw, metadata=script(cheap={"reply": "maybe 41", "logprob": -2.0}, big={"reply": "42"})
    )
    assert raw.headers["x-crossroads-model"] == "big"
    trace = gw.trace(raw.headers["x-crossroads-trace-id"])
    assert "mean_logprob -2 below -0.5" in trace["stages"][0]["reason"]


def test_first_token_entropy(gateway_for) -> None:
    plan = {
        "kind": "cascade",
        "stages": [
            {
                "models": ["cheap"],
                "accept": [
                    {"rule": "confidence", "metric": "first_token_entropy", "threshold": 0.3}
                ],
            },
            {"models": ["big"]},
        ],
    }
    gw = gateway_for(plan)
    sure = script(cheap={"reply": "Paris", "first_top": [-0.001, -9.0, -9.0]})
    raw, _ = ask(gw, metadata=sure)
    assert raw.headers["x-crossroads-model"] == "cheap"
    torn = script(
        cheap={"reply": "Lyon", "first_top": [-0.69, -0.70, -3.0]}, big={"reply": "Paris"}
    )
    raw, _ = ask(gw, metadata=torn)
    assert raw.headers["x-crossroads-model"] == "big"


def test_a_client_that_asks_for_logprobs_keeps_them(gateway_for) -> None:
    gw = gateway_for(CONFIDENT)
    _, answer = ask(
        gw, metadata=script(cheap={"reply": "42 indeed"}), logprobs=True, top_logprobs=2
    )
    assert [t.token for t in answer.choices[0].logprobs.content] == ["42", "indeed"]


def test_streamed_cascade_serves_one_coherent_stream(gateway_for) -> None:
    gw = gateway_for(AGREE)
    meta = script(
        cheap={"reply": "#### 41"}, cheap2={"reply": "#### 42"}, big={"reply": "the big answer"}
    )
    with gw.client.chat.completions.with_streaming_response.create(
        model="auto",
        messages=[{"role": "user", "content": "q"}],
        stream=True,
        stream_options={"include_usage": True},
        metadata=meta,
    ) as response:
        trace_id = response.headers["x-crossroads-trace-id"]
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "the big answer"
    assert {c.model for c in chunks} == {"big"}  # nothing of the rejected stage leaked
    assert chunks[-1].usage is not None
    trace = gw.trace(trace_id)
    assert trace["stream"] and trace["model"] == "big"
    assert {s["verdict"] for s in trace["stages"]} == {"rejected", "accepted"}
    assert trace["cost"] == pytest.approx(sum(s["cost"] for s in trace["stages"]))
    assert all(s["usage"] is not None for s in trace["stages"])


def test_streamed_cheap_answer_accepted_is_its_own_frames(gateway_for) -> None:
    gw = gateway_for(CONFIDENT)
    stream = gw.client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "q"}],
        stream=True,
        metadata=script(cheap={"reply": "a cheap but sure answer", "logprob": -0.01}),
    )
    chunks = list(stream)
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == "a cheap but sure answer"
    )
    assert all(c.choices[0].logprobs is None for c in chunks if c.choices)  # stripped
    assert {c.model for c in chunks} == {"cheap"}


def test_accept_on_a_prefix_streams_the_rest_live(gateway_for, upstream) -> None:
    plan = {
        "kind": "cascade",
        "stages": [
            {"models": ["cheap"], "accept": [{"rule": "checks"}], "accept_prefix_tokens": 1},
            {"models": ["big"]},
        ],
    }
    gw = gateway_for(plan)
    words = " ".join(f"w{i}" for i in range(40))
    with gw.client.chat.completions.with_streaming_response.create(
        model="auto",
        messages=[{"role": "user", "content": "q"}],
        stream=True,
        metadata=script(cheap={"reply": words}),
    ) as response:
        trace_id = response.headers["x-crossroads-trace-id"]
        chunks = list(response.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == words
    trace = gw.trace(trace_id)
    (stage,) = trace["stages"]
    assert stage["verdict"] == "accepted" and stage["usage"]["completion_tokens"] == 40
    assert trace["cost"] == pytest.approx(cost("cheap", stage["usage"]["prompt_tokens"], 40))


def test_tool_calls_through_a_cascade(gateway_for) -> None:
    gw = gateway_for(CHECKS)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    # The cheap model calls the tool with arguments that violate its schema: escalate.
    meta = script(cheap={"tool_arguments": '{"town": 3}'})
    raw, answer = ask(gw, "weather in Paris?", tools=tools, tool_choice="required", metadata=meta)
    assert raw.headers["x-crossroads-model"] == "big"
    (call,) = answer.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)
    trace = gw.trace(raw.headers["x-crossroads-trace-id"])
    assert "violates the schema" in trace["stages"][0]["reason"]
    # Valid arguments: the cheap call is served, streamed too.
    stream = gw.client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "weather?"}],
        tools=tools,
        tool_choice="required",
        stream=True,
    )
    chunks = list(stream)
    args = "".join(
        (c.choices[0].delta.tool_calls or [None])[0].function.arguments or ""
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert json.loads(args) == {"city": "weather?"}
    assert {c.model for c in chunks} == {"cheap"}


def test_json_mode_through_a_cascade(gateway_for) -> None:
    gw = gateway_for(AGREE)
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    meta = script(
        cheap={"reply": '{"answer": "forty-two"}'},
        cheap2={"reply": '{"answer": 42}'},
        big={"reply": '{"answer": 42}'},
    )
    raw, answer = ask(gw, response_format=fmt, metadata=meta)
    # cheap's JSON violates the schema, so only one cheap answer is left: no agreement.
    assert raw.headers["x-crossroads-model"] == "big"
    assert json.loads(answer.choices[0].message.content) == {"answer": 42}
    trace = gw.trace(raw.headers["x-crossroads-trace-id"])
    reasons = {s["model"]: s["reason"] for s in trace["stages"]}
    assert "violates the schema" in reasons["cheap"]
    # Both valid and equal as JSON (key order aside): accepted.
    meta = script(cheap={"reply": '{"answer": 42}'}, cheap2={"reply": '{ "answer" : 42 }'})
    raw, answer = ask(gw, response_format=fmt, metadata=meta)
    assert raw.headers["x-crossroads-model"] == "cheap"


def test_a_failing_cheap_stage_escalates(gateway_for) -> None:
    gw = gateway_for(CHECKS, dispatch={"retries": {"max_attempts": 1}})
    raw, answer = ask(gw, metadata=script(cheap={"fault": "503"}, big={"reply": "from big"}))
    assert answer.choices[0].message.content == "from big"
    trace = gw.trace(raw.headers["x-crossroads-trace-id"])
    assert [s["verdict"] for s in trace["stages"]] == ["error", "accepted"]
    assert trace["stages"][0]["cost"] is None  # a failed call costs nothing


def test_a_failing_last_stage_is_the_clients_error(gateway_for) -> None:
    import openai

    gw = gateway_for(CHECKS, dispatch={"retries": {"max_attempts": 1}})
    meta = script(cheap={"reply": ""}, big={"fault": "503"})
    with pytest.raises(openai.APIStatusError) as caught:
        ask(gw, metadata=meta)
    assert caught.value.status_code == 503 or caught.value.status_code == 502
    trace = gw.trace(caught.value.response.headers["x-crossroads-trace-id"])
    assert [s["verdict"] for s in trace["stages"]] == ["rejected", "error"]


def test_samples_of_one_model_self_consistency(gateway_for, upstream) -> None:
    plan = {
        "kind": "cascade",
        "stages": [
            {"models": ["cheap"], "samples": 3, "accept": [{"rule": "agreement", "min_agree": 3}]},
            {"models": ["big"]},
        ],
    }
    gw = gateway_for(plan)
    raw, _ = ask(gw, metadata=script(cheap={"reply": "#### 7"}))
    assert raw.headers["x-crossroads-model"] == "cheap"
    trace = gw.trace(raw.headers["x-crossroads-trace-id"])
    assert [s["model"] for s in trace["stages"]] == ["cheap"] * 3


def test_an_anthropic_client_through_a_cascade(gateway_for, upstream) -> None:
    import anthropic

    gw = gateway_for(AGREE)
    client = anthropic.Anthropic(base_url=gw.server.url, api_key="-", max_retries=0)
    # Anthropic's metadata holds only user_id: script the upstream itself.
    upstream.config.scripts = {"cheap": {"reply": "#### 5"}, "cheap2": {"reply": "#### 5"}}
    message = client.messages.create(
        model="auto", max_tokens=50, messages=[{"role": "user", "content": "2+3"}]
    )
    assert message.content[0].text == "#### 5"
    upstream.config.scripts = {
        "cheap": {"reply": "#### 5"},
        "cheap2": {"reply": "#### 6"},
        "big": {"reply": "five"},
    }
    with client.messages.stream(
        model="auto", max_tokens=50, messages=[{"role": "user", "content": "2+3"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "five"
    assert final.usage.output_tokens >= 1
