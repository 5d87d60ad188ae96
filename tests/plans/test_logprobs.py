"""Reading and removing OpenAI logprobs."""

from __future__ import annotations

import math

import orjson

from crossroads.plans.logprobs import Logprobs, strip_body, strip_frames


def chat_choice(values, tops=None):
    content = [{"token": f"t{i}", "logprob": v, "top_logprobs": []} for i, v in enumerate(values)]
    if tops is not None:
        content[0]["top_logprobs"] = [{"token": "a", "logprob": t} for t in tops]
    return {"index": 0, "message": {"content": "x"}, "logprobs": {"content": content}}


def test_metrics() -> None:
    lp = Logprobs()
    lp.add_choice(chat_choice([-0.1, -0.3, -2.0], tops=[math.log(0.5), math.log(0.5)]))
    assert lp.value("mean_logprob") == (-0.1 - 0.3 - 2.0) / 3
    assert lp.value("min_logprob") == -2.0
    assert abs(lp.value("first_token_entropy") - math.log(2)) < 1e-9
    assert Logprobs().value("mean_logprob") is None


def test_legacy_completions_and_chunks() -> None:
    lp = Logprobs()
    lp.add_choice(
        {
            "logprobs": {
                "tokens": ["a", "b"],
                "token_logprobs": [-1.0, None],
                "top_logprobs": [{"a": -1.0, "c": -2.0}],
            }
        }
    )
    assert lp.tokens == [-1.0] and lp.first_top == [-1.0, -2.0]
    chunk = orjson.dumps({"choices": [chat_choice([-0.5])]})
    streamed = Logprobs()
    streamed.add_chunk(chunk)
    streamed.add_chunk(b"[DONE]")
    assert streamed.tokens == [-0.5]


def test_strip() -> None:
    body = orjson.dumps({"id": "x", "choices": [chat_choice([-0.5])]})
    assert orjson.loads(strip_body(body))["choices"][0]["logprobs"] is None
    frames = b"data: " + orjson.dumps({"choices": [chat_choice([-0.5])]}) + b"\n\ndata: [DONE]\n\n"
    out = strip_frames(frames)
    assert b'"logprobs":null' in out and out.endswith(b"data: [DONE]\n\n")
    assert strip_frames(b"data: {}\n\n") == b"data: {}\n\n"
