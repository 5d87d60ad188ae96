"""A Chat Completions body lands in the canonical request field by field (the request is
built positionally, so a field out of order would show here)."""

from __future__ import annotations

import orjson

from crossroads.formats import openai_chat
from crossroads.prompts import routing_request
from crossroads.types import Caller, ResponseFormat, Tool


def test_every_field_lands_where_it_belongs() -> None:
    body = {
        "model": "auto",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": "hello"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d"}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": False,
        "response_format": {"type": "json_object"},
        "max_completion_tokens": 7,
        "max_tokens": 9,
        "temperature": 0.5,
        "top_p": 0.25,
        "stop": "END",
        "seed": 11,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "ann",
        "metadata": {"k": "v"},
    }
    r = openai_chat.parse(orjson.dumps(body))
    assert (r.operation, r.model, r.source) == ("chat", "auto", "openai_chat")
    assert [(m.role, m.content) for m in r.messages] == [("system", "be brief"), ("user", "hello")]
    assert (r.prompt, r.input, r.top_k, r.logprobs) == (None, None, None, None)
    assert r.tools == [Tool("f", "d", None)] and r.tool_choice == "f"
    assert r.parallel_tool_calls is False
    assert r.response_format == ResponseFormat("json_object")
    assert (r.max_tokens, r.temperature, r.top_p, r.stop, r.seed) == (7, 0.5, 0.25, ["END"], 11)
    assert (r.stream, r.include_usage, r.user, r.metadata) == (True, True, "ann", {"k": "v"})
    assert r.wire == body


def test_the_routing_view_of_a_request() -> None:
    body = {"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    request = openai_chat.parse(orjson.dumps({**body, "tools": [{"type": "function",
        "function": {"name": "f"}}]}))  # fmt: skip
    caller = Caller(key_name="k")
    facts = routing_request(request, "chat", caller)
    assert (facts.request, facts.operation, facts.caller) == (request, "chat", caller)
    assert (facts.text, facts.last_user_text, facts.max_output_tokens) == ("hi", "hi", 5)
    assert facts.prompt_tokens > 0 and facts.needs == {"tools"}
