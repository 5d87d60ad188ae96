"""The Anthropic upstream: translation both ways, then the real gateway against a fake
Anthropic Messages API on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest

from crossroads.config import AnthropicUpstreamConfig, Config, parse_config
from crossroads.dispatch.anthropic import AnthropicUpstream, anthropic_status_error
from crossroads.exceptions import RequestEncodingError, UpstreamProtocolError
from crossroads.formats import anthropic_messages, openai_chat
from crossroads.formats.anthropic_messages import JSON_ONLY, finish_reason, tool_choice
from crossroads.gateway import create_app
from crossroads.store.memory import MemoryTraceStore
from tests.support.fake_anthropic import FakeAnthropic

CHAT = "/v1/chat/completions"
KEY_ENV = "CROSSROADS_TEST_ANTHROPIC_KEY"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def upstream_config(**overrides: Any) -> AnthropicUpstreamConfig:
    return AnthropicUpstreamConfig(
        **{"kind": "anthropic", "name": "claude", "default_max_tokens": 512, **overrides}
    )


def translate(**body: Any) -> dict[str, Any]:
    """An OpenAI chat body as an Anthropic upstream receives it (through the canonical
    request, as the gateway sends it)."""
    request = openai_chat.parse_request({"model": "claude-test", **body})
    return anthropic_messages.encode_request(request, "claude-test", None)


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


# --------------------------------------------------------------------------- request


def test_system_and_developer_become_top_level_system_with_json_instruction() -> None:
    out = translate(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            user("hi"),
        ],
        response_format={"type": "json_object"},
    )
    assert out["system"] == f"Be brief.\n\nUse metric units.\n\n{JSON_ONLY}"
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


def test_consecutive_turns_merge_and_empty_turns_drop() -> None:
    out = translate(
        messages=[
            user("a"),
            user([{"type": "text", "text": "b"}]),
            {"role": "assistant", "content": ""},
            user("c"),
            {"role": "assistant", "content": "d"},
            {"role": "assistant", "content": [{"type": "text", "text": "e"}]},
        ]
    )
    assert [(m["role"], [b["text"] for b in m["content"]]) for m in out["messages"]] == [
        ("user", ["a", "b", "c"]),
        ("assistant", ["d", "e"]),
    ]


def test_images_data_urls_are_base64_and_http_urls_are_url_sources() -> None:
    out = translate(
        messages=[
            user(
                [
                    {"type": "text", "text": "compare"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}},
                ]
            )
        ]
    )
    assert out["messages"][0]["content"][1:] == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"},
        },
        {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.jpg"}},
    ]
    with pytest.raises(RequestEncodingError, match="base64") as info:
        translate(messages=[user([{"type": "image_url", "image_url": {"url": "data:,abc"}}])])
    assert info.value.status == 400


def test_unsupported_content_part_is_a_400() -> None:
    with pytest.raises(RequestEncodingError, match="input_audio") as info:
        translate(messages=[user([{"type": "input_audio", "input_audio": {}}])])
    assert info.value.status == 400


def test_tools_tool_calls_and_tool_results() -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    }
    out = translate(
        messages=[
            user("weather in Oslo?"),
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "-3C"},
            user("and tomorrow?"),
        ],
        tools=[WEATHER],
    )
    assert out["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather in a city",
            "input_schema": WEATHER["function"]["parameters"],
        }
    ]
    assert "tool_choice" not in out
    assert out["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}}
        ],
    }
    # the tool result and the next user message share one user turn, tool_result first
    assert out["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "-3C"},
            {"type": "text", "text": "and tomorrow?"},
        ],
    }


def test_tool_call_arguments_that_are_not_json_are_a_400() -> None:
    bad = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    with pytest.raises(RequestEncodingError, match="not JSON"):
        translate(messages=[user("x"), {"role": "assistant", "tool_calls": [bad]}])


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, None, None),
    ],
)
def test_tool_choice(choice: Any, parallel: bool | None, expected: Any) -> None:
    extra: dict[str, Any] = {"tools": [WEATHER]}
    if choice is not None:
        extra["tool_choice"] = choice
    if parallel is not None:
        extra["parallel_tool_calls"] = parallel
    assert translate(messages=[user("x")], **extra).get("tool_choice") == expected
    canonical = choice if not isinstance(choice, dict) else choice["function"]["name"]
    assert tool_choice(canonical, parallel) == expected


def test_sampling_fields_max_tokens_stop_and_user() -> None:
    out = translate(
        messages=[user("x")],
        temperature=0.2,
        top_p=0.9,
        stop="END",
        user="u-42",
        stream=True,
        stream_options={"include_usage": True},
        n=1,
        seed=7,
    )
    # No max_tokens asked: the upstream adds its default_max_tokens (Anthropic requires one).
    sent = orjson.loads(AnthropicUpstream(upstream_config())._payload(out))
    assert sent["max_tokens"] == 512
    assert out == {
        "model": "claude-test",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "stream": True,
        "metadata": {"user_id": "u-42"},
    }
    assert translate(messages=[user("x")], max_tokens=10)["max_tokens"] == 10
    assert (
        translate(messages=[user("x")], max_tokens=10, max_completion_tokens=20)["max_tokens"] == 20
    )


# --------------------------------------------------------------------------- response


def test_response_text_and_tool_use_become_an_openai_completion() -> None:
    data = {
        "id": "msg_1",
        "type": "message",
        "model": "claude-test",
        "content": [
            {"type": "text", "text": "Let me check. "},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "output_tokens": 7, "cache_read_input_tokens": 5},
    }
    response = anthropic_messages.parse_response(orjson.dumps(data), "claude")
    usage = response.usage
    assert usage is not None
    request = openai_chat.parse_request({"model": "auto", "messages": [user("x")]})
    completion = orjson.loads(openai_chat.render_response(response, request))
    assert completion["object"] == "chat.completion" and completion["id"] == "msg_1"
    assert completion["model"] == "claude-test" and isinstance(completion["created"], int)
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check. "
    assert choice["message"]["tool_calls"] == [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        }
    ]
    assert (usage.prompt_tokens, usage.completion_tokens) == (15, 7)
    assert completion["usage"] == {"prompt_tokens": 15, "completion_tokens": 7, "total_tokens": 22}


def test_response_without_content_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError, match="'content'"):
        anthropic_messages.parse_response(b'{"type": "message"}', "claude")


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        (None, None),
    ],
)
def test_stop_reasons(stop_reason: str | None, expected: str | None) -> None:
    assert finish_reason(stop_reason) == expected


# --------------------------------------------------------------------------- stream


def chunks_of(frames: list[bytes]) -> list[Any]:
    out = []
    for frame in frames:
        assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
        data = frame[6:-2]
        out.append(data.decode() if data == b"[DONE]" else orjson.loads(data))
    return out


def test_stream_events_become_openai_chunks() -> None:
    events = [
        {"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {"input_tokens": 9, "output_tokens": 1}}},
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"a":'}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "1}"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}},
        {"type": "message_stop"},
    ]  # fmt: skip
    decode = anthropic_messages.stream_decoder("claude")
    request = openai_chat.parse_request(
        {
            "model": "auto",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [user("x")],
        }
    )
    encoder = openai_chat.stream_encoder(request, "t1")
    decoded = []
    for event in events:
        data = orjson.dumps(event)
        decoded.append(decode(b"event: x\ndata: " + data + b"\n\n", data))
    assert decoded[-1].done and not any(e.done for e in decoded[:-1])
    usage = decoded[-2].usage
    frames = [f for e in decoded[:-1] if (f := encoder.encode(e))] + [encoder.finish(usage)]
    chunks = chunks_of(b"".join(frames).replace(b"\n\n", b"\n\n\0").split(b"\0")[:-1])
    assert chunks[-1] == "[DONE]"
    assert len({c["id"] for c in chunks[:-1]}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks[:-1])
    deltas = [c["choices"][0]["delta"] for c in chunks[:-2]]
    assert deltas == [
        {"role": "assistant"},
        {"content": "Hi"},
        {
            "tool_calls": [
                {"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": ""}}
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]},
        {},
    ]  # fmt: skip
    assert chunks[-3]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-2]["choices"] == []
    assert chunks[-2]["usage"] == {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}
    assert b'"usage"' not in b"".join(frames[:-1])  # usage only in its own chunk


def test_stream_error_event_raises_with_anthropics_message() -> None:
    decode = anthropic_messages.stream_decoder("claude")
    error = orjson.dumps(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    with pytest.raises(UpstreamProtocolError, match="Overloaded") as info:
        decode(b"event: error\ndata: " + error + b"\n\n", error)
    assert info.value.status == 503


# --------------------------------------------------------------------------- errors


def test_529_is_a_retryable_503_and_400_keeps_anthropics_message() -> None:
    body = orjson.dumps(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    err = anthropic_status_error("claude", 529, body, {"retry-after": "3"})
    assert (err.status, err.retryable, err.retry_after) == (503, True, 3.0)
    assert "overloaded (529): Overloaded" in err.message
    body = orjson.dumps(
        {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "max_tokens: too big"},
        }
    )
    err = anthropic_status_error("claude", 400, body, {})
    assert (err.status, err.retryable) == (400, False)
    assert "max_tokens: too big" in err.message
    assert err.public == "The upstream rejected the request (400): max_tokens: too big"


def test_completions_are_not_a_format_anthropic_speaks() -> None:
    """The dispatcher refuses completions for an Anthropic endpoint with a 400 before any
    call (see test_gateway_completions_endpoint_is_a_clear_400 for the whole path)."""
    assert set(AnthropicUpstream.formats) == {"chat"}


# --------------------------------------------------------------------------- gateway


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(chunks=3) as server:
        yield server


def anthropic_config(base_url: str, **extra: Any) -> Config:
    return parse_config(
        {
            "upstreams": [
                {
                    "name": "claude",
                    "kind": "anthropic",
                    "base_url": base_url,
                    "api_key_env": KEY_ENV,
                    "timeouts": {"total": 10},
                }
            ],
            "models": [
                {
                    "name": "sonnet",
                    "upstream": "claude",
                    "upstream_model": "claude-test",
                    "price": {"input": 3.0, "output": 15.0},
                    "capabilities": ["tools", "vision", "json"],
                }
            ],
            "default": {"models": ["sonnet"]},
            "store": {"traces": "memory"},
            **extra,
        }
    )


@pytest.fixture
async def gateway(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, MemoryTraceStore]]:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    store = MemoryTraceStore()
    app = create_app(anthropic_config(fake.url), store=store)
    await app.startup()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=10
    ) as client:
        yield client, store
    await app.shutdown()


def chat(text: str = "hello", **body: Any) -> dict[str, Any]:
    return {
        "model": "auto",
        "messages": [{"role": "system", "content": "Be brief."}, user(text)],
        **body,
    }


def sse(text: str) -> list[Any]:
    return [
        block[6:] if block == "data: [DONE]" else orjson.loads(block[6:])
        for block in text.split("\n\n")
        if block.startswith("data: ")
    ]


async def test_gateway_non_stream(gateway, fake: FakeAnthropic) -> None:
    client, store = gateway
    r = await client.post(CHAT, json=chat("hello there"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "claude-test"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "echo: hello there"}
    assert body["choices"][0]["finish_reason"] == "stop"
    headers, sent = fake.app.requests[-1]
    assert headers["x-api-key"] == "sk-test" and headers["anthropic-version"] == "2023-06-01"
    assert sent["system"] == "Be brief." and sent["max_tokens"] == 4096
    trace = store.get(r.headers["x-crossroads-trace-id"])
    assert trace["status"] == 200
    assert trace["usage"] == {
        "prompt_tokens": body["usage"]["prompt_tokens"],
        "completion_tokens": 3,
        "estimated": False,
    }
    assert trace["cost"] > 0


async def test_gateway_stream(gateway) -> None:
    client, store = gateway
    r = await client.post(CHAT, json=chat("stream me", stream=True))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "echo: stream me"
    assert len([c for c in chunks if c["choices"][0]["delta"].get("content")]) == 3
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)  # the client did not ask for usage
    trace = store.get(r.headers["x-crossroads-trace-id"])
    assert trace["status"] == 200 and trace["usage"]["completion_tokens"] == 3

    r = await client.post(
        CHAT, json=chat("stream me", stream=True, stream_options={"include_usage": True})
    )
    usage_chunk = sse(r.text)[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("stream", [False, True])
async def test_gateway_tool_call(gateway, fake: FakeAnthropic, stream: bool) -> None:
    client, _ = gateway
    choice = {"type": "function", "function": {"name": "get_weather"}}
    r = await client.post(
        CHAT, json=chat("Oslo", tools=[WEATHER], tool_choice=choice, stream=stream)
    )
    assert r.status_code == 200, r.text
    assert fake.app.requests[-1][1]["tool_choice"] == {"type": "tool", "name": "get_weather"}
    if not stream:
        choice_out = r.json()["choices"][0]
        calls = choice_out["message"]["tool_calls"]
        finish = choice_out["finish_reason"]
    else:
        chunks = sse(r.text)[:-1]
        deltas = [d for c in chunks for d in c["choices"][0]["delta"].get("tool_calls") or []]
        first = deltas[0]
        arguments = "".join(d["function"]["arguments"] for d in deltas)
        calls = [{**first, "function": {**first["function"], "arguments": arguments}}]
        calls[0].pop("index")
        finish = chunks[-1]["choices"][0]["finish_reason"]
    assert finish == "tool_calls"
    assert calls == [
        {
            "id": calls[0]["id"],
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"text":"Oslo"}'},
        }
    ]
    assert calls[0]["id"].startswith("toolu_")


async def test_gateway_tool_round_trip_passes_anthropics_turn_rules(
    gateway, fake: FakeAnthropic
) -> None:
    client, _ = gateway
    call = {
        "id": "toolu_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
    }
    messages = [
        user("weather?"),
        user("in Oslo"),  # two user turns in a row: merged
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "-3C"},
        user("and tomorrow?"),
    ]
    r = await client.post(CHAT, json={"model": "auto", "messages": messages, "tools": [WEATHER]})
    assert r.status_code == 200, r.text  # the fake answers 400 when a turn rule is broken
    assert r.json()["choices"][0]["message"]["content"] == "echo: and tomorrow?"
    assert [m["role"] for m in fake.app.requests[-1][1]["messages"]] == [
        "user",
        "assistant",
        "user",
    ]


@pytest.mark.parametrize(
    ("upstream_status", "status", "client_says", "trace_says"),
    [
        (400, 400, "injected 400", "injected 400"),
        (529, 503, "(upstream status 5xx)", "overloaded (529): injected 529"),
        (401, 502, "(upstream status 4xx)", "api_key_env"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_gateway_upstream_error_status(
    gateway,
    fake: FakeAnthropic,
    upstream_status: int,
    status: int,
    client_says: str,
    trace_says: str,
    stream: bool,
) -> None:
    # The client reads its own 400 as the upstream wrote it; a 5xx or a credentials failure
    # (whose text hints at the gateway's config: "check its api_key_env") only as a generic
    # message with the trace id; the trace keeps the full upstream text for the operator.
    client, store = gateway
    fake.app.fail_status = upstream_status
    r = await client.post(CHAT, json=chat(stream=stream))
    assert r.status_code == status
    message = r.json()["error"]["message"]
    trace_id = r.headers["x-crossroads-trace-id"]
    assert client_says in message
    if upstream_status != 400:
        assert trace_says not in message and "claude" not in message and trace_id in message
    trace = store.get(trace_id)
    assert trace["status"] == status and trace_says in trace["error"]


@pytest.mark.parametrize("stream", [False, True])
async def test_gateway_upstream_error_text_with_keys_stays_in_the_trace(
    gateway, fake: FakeAnthropic, stream: bool
) -> None:
    client, store = gateway
    fake.app.fail_status = 401
    fake.app.fail_message = "invalid x-api-key sk-ant-api03-...wxyz for org acme-prod"
    r = await client.post(CHAT, json=chat(stream=stream))
    assert r.status_code == 502
    assert "sk-ant" not in r.text and "acme-prod" not in r.text and "api_key_env" not in r.text
    trace = store.get(r.headers["x-crossroads-trace-id"])
    assert "sk-ant-api03-...wxyz" in trace["error"] and "acme-prod" in trace["error"]

    # The client's own 400 is passed on, with anything that looks like a key masked.
    fake.app.fail_status = 400
    fake.app.fail_message = (
        "prompt is too long: 250000 tokens > 200000 maximum (key sk-abc123def456ghi, "
        "Authorization: Bearer tok_9f8e7d6c5b4a)"
    )
    r = await client.post(CHAT, json=chat(stream=stream))
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert "prompt is too long: 250000 tokens > 200000 maximum" in message
    assert "sk-abc123" not in message and "tok_9f8e" not in message and "[redacted]" in message
    assert "sk-abc123def456ghi" in store.get(r.headers["x-crossroads-trace-id"])["error"]


@pytest.mark.parametrize(
    ("fault", "in_trace"), [("error", "Overloaded"), ("cut", "without 'message_stop'")]
)
async def test_gateway_broken_stream_ends_with_an_error_event(
    gateway, fake: FakeAnthropic, fault: str, in_trace: str
) -> None:
    # The upstream's words ("Overloaded") and the upstream's name stay in the trace; the
    # client reads a generic message naming the trace.
    client, store = gateway
    fake.app.stream_fault = fault
    r = await client.post(CHAT, json=chat(stream=True))
    trace_id = r.headers["x-crossroads-trace-id"]
    if r.status_code == 200:  # content was forwarded before the failure
        events = sse(r.text)
        assert events[-1] == "[DONE]"
        message = events[-2]["error"]["message"]
    else:  # the failure arrived in the same read as the start: nothing was forwarded yet
        assert r.status_code in (502, 503)
        message = r.json()["error"]["message"]
    assert in_trace not in message and "claude" not in message and trace_id in message
    trace = store.get(trace_id)
    assert trace["status"] != 200 and in_trace in trace["error"]


async def test_gateway_completions_endpoint_is_a_clear_400(gateway, fake: FakeAnthropic) -> None:
    client, _ = gateway
    r = await client.post("/v1/completions", json={"model": "auto", "prompt": "hi"})
    assert r.status_code == 400
    assert "does not serve /completions" in r.json()["error"]["message"]
    assert fake.app.requests == []


async def test_openai_sdk_through_the_gateway(gateway) -> None:
    openai = pytest.importorskip("openai")
    client, _ = gateway
    sdk = openai.AsyncOpenAI(base_url="http://gw/v1", api_key="unused", http_client=client)
    answer = await sdk.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "sdk"}]
    )
    assert answer.choices[0].message.content == "echo: sdk"
    assert answer.usage is not None and answer.usage.total_tokens > 0
    stream = await sdk.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "sdk"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: sdk"


async def test_breaker_reasons_never_quote_another_requests_error(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    cfg = anthropic_config(
        fake.url, dispatch={"breaker": {"consecutive_failures": 2, "open_s": 60}}
    )
    app = create_app(cfg, store=MemoryTraceStore())
    fake.app.fail_status = 503
    fake.app.fail_message = "overloaded while serving alice@example.com's request"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=10
    ) as client:
        first = await client.post(CHAT, json=chat())
        assert first.status_code == 503  # its breaker opened during its own attempts
        later = await client.post(CHAT, json=chat())
        endpoints = (await client.get("/v1/crossroads/endpoints")).json()["data"]
    await app.shutdown()
    assert later.status_code == 503 and later.json()["error"]["code"] == "all_endpoints_down"
    assert "alice" not in later.text and "overloaded while" not in later.text
    assert "consecutive failures: http_503" in later.json()["error"]["message"]
    (state,) = endpoints
    assert state["state"] == "open" and state["reason"] == "2 consecutive failures: http_503"


async def test_a_schema_too_deep_to_encode_is_the_clients_400_once(
    gateway, fake: FakeAnthropic
) -> None:
    schema: Any = {"type": "object"}
    for _ in range(300):
        schema = {"type": "object", "properties": {"a": schema}}
    fmt = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
    client, _ = gateway
    for _ in range(6):  # more than breaker.consecutive_failures
        r = await client.post(CHAT, json=chat(response_format=fmt))
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request_body"
    assert fake.app.requests == []
    assert (await client.post(CHAT, json=chat())).status_code == 200
