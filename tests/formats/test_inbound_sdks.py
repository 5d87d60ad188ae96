"""The Anthropic Messages and OpenAI Responses APIs through the gateway, driven by the
official SDKs unchanged, routed to an OpenAI-compatible fake upstream (and, for Messages,
to an Anthropic fake upstream: Anthropic in, Anthropic out, across the canonical types)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest

from crossroads.gateway import create_app
from crossroads.gateway.protocol import GatewayProtocol
from crossroads.store.memory import MemoryTraceStore
from tests.conftest import routing_config
from tests.support.fake_upstream import FakeUpstream
from tests.support.server_thread import BackgroundServer

WEATHER = {
    "name": "get_weather",
    "description": "Weather of a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
async def served(fake_upstream: FakeUpstream) -> AsyncIterator[tuple[str, MemoryTraceStore]]:
    store = MemoryTraceStore()
    app = create_app(routing_config(fake_upstream.base_url), store=store)
    server = BackgroundServer(app, http=GatewayProtocol, lifespan="on")
    async with server:
        yield server.url, store


@pytest.fixture
async def claude(served) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=served[0], api_key="-", max_retries=0) as c:
        yield c


@pytest.fixture
async def oai(served) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=served[0] + "/v1", api_key="-", max_retries=0) as c:
        yield c


def _trace(store: MemoryTraceStore, trace_id: str) -> dict[str, Any]:
    import time

    for _ in range(200):
        trace = store.get(trace_id)
        if trace is not None:
            return trace
        time.sleep(0.005)
    raise AssertionError(f"no trace {trace_id}")


# --------------------------------------------------------------------------- Anthropic Messages


async def test_messages_create_routes_and_answers_in_anthropic_shape(served, claude) -> None:
    url, store = served
    client = claude
    raw = await client.messages.with_raw_response.create(
        model="auto",
        max_tokens=50,
        system="You are terse.",
        messages=[
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": [{"type": "text", "text": "write some python"}]},
        ],
        stop_sequences=["END"],
    )
    message = await raw.parse()
    assert raw.headers["x-crossroads-decision"] == "coding"
    assert raw.headers["x-crossroads-model"] == "big"
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    trace = _trace(store, raw.headers["x-crossroads-trace-id"])
    assert trace["format"] == "anthropic_messages" and trace["usage"]["completion_tokens"] > 0
    assert store.recent(1)[0]["format"] == "anthropic_messages"
    assert trace["cost"] > 0


async def test_messages_stream_gives_the_documented_event_sequence(served, claude) -> None:
    url, _ = served
    client = claude
    async with client.messages.stream(
        model="auto", max_tokens=50, messages=[{"role": "user", "content": "hello there"}]
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "content_block_delta" in kinds
    assert final.content[0].text and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


async def test_messages_tools_and_tool_results(served, claude) -> None:
    url, _ = served
    client = claude
    message = await client.messages.create(
        model="small",
        max_tokens=50,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "weather in Paris?"}],
    )
    assert message.stop_reason == "tool_use"
    (call,) = [b for b in message.content if b.type == "tool_use"]
    assert call.name == "get_weather" and isinstance(call.input, dict) and "city" in call.input
    follow = await client.messages.create(
        model="small",
        max_tokens=50,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": [c.model_dump() for c in message.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}],
            },
        ],
    )
    assert follow.content[0].type == "text"


async def test_messages_stream_tool_call(served, claude) -> None:
    url, _ = served
    client = claude
    async with client.messages.stream(
        model="small",
        max_tokens=50,
        tools=[WEATHER],
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "weather in Paris?"}],
    ) as stream:
        final = await stream.get_final_message()
    (call,) = [b for b in final.content if b.type == "tool_use"]
    assert call.name == "get_weather" and "city" in call.input
    assert final.stop_reason == "tool_use"


async def test_messages_image_block_needs_vision(served, claude) -> None:
    url, _ = served
    client = claude
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(
            model="auto",
            max_tokens=20,
            messages=[{"role": "user", "content": [image, {"type": "text", "text": "what?"}]}],
        )
    assert info.value.body["type"] == "error"
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert "vision" in info.value.body["error"]["message"]


async def test_messages_errors_are_in_anthropic_shape(served, claude) -> None:
    url, _ = served
    client = claude
    with pytest.raises(anthropic.NotFoundError) as missing:
        await client.messages.create(
            model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as bad:
        await client.messages.create(
            model="auto", max_tokens=0, messages=[{"role": "user", "content": "x"}]
        )
    assert "max_tokens" in bad.value.body["error"]["message"]


async def test_messages_count_tokens(served, claude) -> None:
    short = await claude.messages.count_tokens(
        model="auto", messages=[{"role": "user", "content": "hello"}]
    )
    long = await claude.messages.count_tokens(
        model="auto",
        system="Be brief.",
        messages=[{"role": "user", "content": "hello " * 200}],
    )
    assert 0 < short.input_tokens < long.input_tokens
    assert 190 < long.input_tokens < 260  # "hello " is a token or so each
    with pytest.raises(anthropic.BadRequestError) as bad:
        await claude.messages.count_tokens(model="auto", messages=[])
    assert bad.value.body["type"] == "error"


# --------------------------------------------------------------------------- OpenAI Responses


async def test_responses_create_with_string_and_items(served, oai) -> None:
    url, store = served
    client = oai
    raw = await client.responses.with_raw_response.create(
        model="auto", input="write some python", instructions="Be brief."
    )
    response = raw.parse()
    assert raw.headers["x-crossroads-model"] == "big"
    assert response.status == "completed" and response.output_text
    assert response.usage is not None and response.usage.output_tokens > 0
    assert _trace(store, raw.headers["x-crossroads-trace-id"])["format"] == "openai_responses"
    items = await client.responses.create(
        model="small",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "hello"}]},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": "again"},
        ],
        store=False,
    )
    assert items.output[0].type == "message" and items.output_text


async def test_responses_function_calls_and_outputs(served, oai) -> None:
    url, _ = served
    client = oai
    tool = {"type": "function", "name": "get_weather", "parameters": WEATHER["input_schema"]}
    first = await client.responses.create(
        model="small", input="weather in Paris?", tools=[tool], tool_choice="required"
    )
    (call,) = [o for o in first.output if o.type == "function_call"]
    assert call.name == "get_weather" and "city" in call.arguments
    second = await client.responses.create(
        model="small",
        tools=[tool],
        input=[
            {"role": "user", "content": "weather in Paris?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
    )
    assert second.output_text


async def test_responses_json_schema_format(served, oai) -> None:
    url, _ = served
    client = oai
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string"}},
        "required": ["colour"],
    }
    response = await client.responses.create(
        model="small",
        input="a colour",
        text={"format": {"type": "json_schema", "name": "c", "schema": schema}},
    )
    import json

    assert isinstance(json.loads(response.output_text), dict)


async def test_responses_stream_event_sequence(served, oai) -> None:
    url, _ = served
    client = oai
    stream = await client.responses.create(model="small", input="hello there", stream=True)
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds and "response.output_text.done" in kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    done = events[-1].response
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert done.output_text == deltas and done.usage.output_tokens > 0


async def test_responses_previous_response_id_is_a_clear_400(served, oai) -> None:
    url, _ = served
    client = oai
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(model="small", input="x", previous_response_id="resp_1")
    assert "previous_response_id" in str(info.value) and info.value.status_code == 400


# --------------------------------------------------------------------------- embeddings


@pytest.fixture
async def embedding_gateway(
    fake_upstream: FakeUpstream,
) -> AsyncIterator[tuple[str, MemoryTraceStore]]:
    config = routing_config(fake_upstream.base_url).model_dump(exclude_unset=True)
    config["models"].append(
        {
            "name": "embed",
            "upstream": "fake",
            "upstream_model": "s",
            "serves": ["embeddings"],
            "price": {"input": 0.02},
        }
    )
    from crossroads.config import parse_config

    store = MemoryTraceStore()
    app = create_app(parse_config(config), store=store)
    async with BackgroundServer(app, http=GatewayProtocol, lifespan="on") as server:
        yield server.url, store


async def test_embeddings_pass_through_to_a_model_that_serves_them(embedding_gateway) -> None:
    url, store = embedding_gateway
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="-", max_retries=0) as client:
        raw = await client.embeddings.with_raw_response.create(model="embed", input=["a b", "c"])
        result = raw.parse()
        assert [d.index for d in result.data] == [0, 1] and len(result.data[0].embedding) == 8
        assert result.usage.prompt_tokens == 3
        trace = _trace(store, raw.headers["x-crossroads-trace-id"])
        assert trace["format"] == "openai_embeddings" and trace["operation"] == "embeddings"
        assert trace["cost"] == pytest.approx(3 * 0.02 / 1e6)
        with pytest.raises(openai.BadRequestError) as info:
            await client.embeddings.create(model="small", input="x")
        assert "does not serve /embeddings" in str(info.value)
        with pytest.raises(openai.BadRequestError):
            await client.embeddings.create(model="embed", input=[])


# --------------------------------------------------------------------------- Anthropic to Anthropic


async def test_messages_reach_an_anthropic_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.dispatch.test_anthropic import KEY_ENV, anthropic_config
    from tests.support.fake_anthropic import FakeAnthropic

    monkeypatch.setenv(KEY_ENV, "sk-test")
    with FakeAnthropic(chunks=3) as fake:
        app = create_app(anthropic_config(fake.url), store=MemoryTraceStore())
        async with (
            BackgroundServer(app, http=GatewayProtocol, lifespan="on") as server,
            anthropic.AsyncAnthropic(base_url=server.url, api_key="-", max_retries=0) as client,
        ):
            message = await client.messages.create(
                model="auto",
                max_tokens=30,
                system="Be brief.",
                messages=[{"role": "user", "content": "hello"}],
                extra_body={"service_tier": "auto"},  # unknown to crossroads: passed on
            )
            async with client.messages.stream(
                model="sonnet", max_tokens=30, messages=[{"role": "user", "content": "again"}]
            ) as stream:
                final = await stream.get_final_message()
        sent = [body for _, body in fake.app.requests]
    assert message.content[0].text and message.usage.output_tokens > 0
    assert final.content[0].text and final.stop_reason == "end_turn"
    assert sent[0]["system"] == "Be brief." and sent[0]["max_tokens"] == 30
    # Same format both ways: the client's body passes through as it is.
    assert sent[0]["service_tier"] == "auto" and sent[0]["messages"][0]["content"] == "hello"
