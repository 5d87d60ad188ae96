"""The fake upstream speaks the OpenAI API (checked with the official SDK) and injects faults."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.support import FakeUpstream, parse_fault
from tests.support.faults import Fault, FaultSchedule

USER = [{"role": "user", "content": "hello there"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(models=["small", "large"], chunks=3, name="up1", hang_timeout=10) as up:
        yield up


@pytest.fixture
def client(upstream: FakeUpstream) -> Iterator[openai.OpenAI]:
    upstream.set_fault(None)
    with openai.OpenAI(base_url=upstream.base_url, api_key="x", max_retries=0, timeout=5) as c:
        yield c


# -- the OpenAI API --------------------------------------------------------------------------


def test_chat_completion_echoes_the_last_user_message(client: openai.OpenAI) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second question"}]},
    ]
    reply = client.chat.completions.create(model="large", messages=messages)  # type: ignore[arg-type]
    assert reply.object == "chat.completion"
    assert reply.model == "large"
    assert reply.id.startswith("chatcmpl-up1-")
    assert reply.system_fingerprint == "fp_up1"
    assert reply.choices[0].message.content == "echo: second question"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.usage.completion_tokens == 3


def test_stream_has_role_first_finish_reason_usage_and_done(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="small", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in chunks[1:4]]
    assert "".join(content) == "echo: hello there"  # type: ignore[arg-type]
    assert len(chunks) == 1 + 3 + 1 + 1  # role, 3 deltas, finish, usage
    assert chunks[4].choices[0].finish_reason == "stop"
    assert chunks[5].choices == [] and chunks[5].usage is not None
    assert chunks[5].usage.completion_tokens == 3
    assert {c.id for c in chunks} == {chunks[0].id}


def test_stream_ends_with_done_and_no_usage_unless_asked(upstream: FakeUpstream) -> None:
    body = {"model": "small", "messages": USER, "stream": True}
    response = httpx.post(upstream.base_url + "/chat/completions", json=body)
    assert response.headers["content-type"] == "text/event-stream"
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)
    assert not any('"usage"' in e for e in events)


def test_forced_tool_call_follows_the_schema(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="small",
        messages=USER,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "hello there", "days": 1}  # type: ignore[union-attr]


def test_streamed_tool_call_reassembles(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="small",
        messages=USER,
        tools=[WEATHER_TOOL],
        tool_choice="required",
        stream=True,  # type: ignore[list-item]
    )
    name, arguments, finish = "", "", None
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or []:
            name += call.function.name or ""  # type: ignore[union-attr]
            arguments += call.function.arguments or ""  # type: ignore[union-attr]
        finish = chunk.choices[0].finish_reason or finish
    assert (name, json.loads(arguments), finish) == (
        "get_weather",
        {"city": "hello there", "days": 1},
        "tool_calls",
    )


def test_auto_tool_choice_answers_text(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="small", messages=USER, tools=[WEATHER_TOOL])  # type: ignore[list-item]
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].message.content == "echo: hello there"


def test_json_response_format(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="small", messages=USER, response_format={"type": "json_object"}
    )
    assert json.loads(reply.choices[0].message.content or "") == {"echo": "hello there"}
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "ok": {"type": "boolean"}},
    }
    reply = client.chat.completions.create(
        model="small",
        messages=USER,
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
    )
    assert json.loads(reply.choices[0].message.content or "") == {
        "answer": "hello there",
        "ok": True,
    }


def test_max_tokens_cuts_with_finish_reason_length(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="small", messages=USER, max_tokens=2)
    assert reply.choices[0].message.content == "echo: hello"
    assert reply.choices[0].finish_reason == "length"


def test_legacy_completions(client: openai.OpenAI) -> None:
    reply = client.completions.create(model="small", prompt="say something")
    assert reply.object == "text_completion"
    assert reply.choices[0].text == "echo: say something"
    stream = client.completions.create(model="small", prompt="say something", stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks) == "echo: say something"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_models_and_health(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    assert [m.id for m in client.models.list()] == ["small", "large"]
    assert httpx.get(upstream.url + "/health").json() == {"status": "ok"}


def test_bad_requests_get_openai_errors(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    response = httpx.post(upstream.base_url + "/chat/completions", content=b"{not json")
    assert response.status_code == 400 and "error" in response.json()
    with pytest.raises(openai.BadRequestError, match="unknown fault"):
        client.chat.completions.create(
            model="small", messages=USER, extra_headers={"x-fake-fault": "explode"}
        )


def test_strict_models_answers_404() -> None:
    with (
        FakeUpstream(models=["only"], strict_models=True) as up,
        openai.OpenAI(base_url=up.base_url, api_key="x", max_retries=0) as c,
    ):
        with pytest.raises(openai.NotFoundError, match="not served here"):
            c.chat.completions.create(model="other", messages=USER)  # type: ignore[arg-type]
        assert c.chat.completions.create(model="only", messages=USER).model == "only"  # type: ignore[arg-type]


# -- faults ----------------------------------------------------------------------------------


def ask(client: openai.OpenAI, fault: str, stream: bool = False, timeout: float = 5) -> str:
    """Send one request with ``fault`` and return the text (consuming a stream)."""
    headers = {"x-fake-fault": fault}
    if not stream:
        reply = client.chat.completions.create(
            model="small", messages=USER, extra_headers=headers, timeout=timeout
        )
        return reply.choices[0].message.content or ""
    chunks = client.chat.completions.create(
        model="small", messages=USER, extra_headers=headers, stream=True, timeout=timeout
    )
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("stream", [False, True])
def test_refuse_drops_the_connection(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.APIConnectionError):
        ask(client, "refuse", stream)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("500", openai.InternalServerError),
        ("502", openai.InternalServerError),
        ("503", openai.InternalServerError),
        ("429", openai.RateLimitError),
    ],
)
def test_status_faults(client: openai.OpenAI, fault: str, error: type[Exception]) -> None:
    with pytest.raises(error, match=f"injected fault {fault}") as info:
        ask(client, fault)
    assert info.value.status_code == int(fault)  # type: ignore[attr-defined]


def test_429_sets_retry_after(upstream: FakeUpstream) -> None:
    body = {"model": "small", "messages": USER}
    response = httpx.post(
        upstream.base_url + "/chat/completions", json=body, headers={"x-fake-fault": "429:7"}
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize("stream", [False, True])
def test_slow_ttft_delays_the_answer(client: openai.OpenAI, stream: bool) -> None:
    start = time.monotonic()
    assert ask(client, "slow_ttft:0.3", stream) == "echo: hello there"
    assert time.monotonic() - start >= 0.3


def test_hang_never_answers_and_frees_the_request(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        ask(client, "hang", timeout=0.3)
    assert time.monotonic() - start < 2
    deadline = time.monotonic() + 2
    while upstream.stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert upstream.stats()["in_flight"] == 0  # the client's disconnect ended the hang


def test_malformed_json(client: openai.OpenAI) -> None:
    with pytest.raises(json.JSONDecodeError):
        ask(client, "malformed_json")
    with pytest.raises(json.JSONDecodeError):
        ask(client, "malformed_json", stream=True)


@pytest.mark.parametrize("stream", [False, True])
def test_truncated_body(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises((openai.APIConnectionError, httpx.RemoteProtocolError)):
        ask(client, "truncated_body", stream)


def test_cut_stream_after_n_events(client: openai.OpenAI) -> None:
    received = []
    with pytest.raises((openai.APIConnectionError, httpx.RemoteProtocolError)):
        stream = client.chat.completions.create(
            model="small",
            messages=USER,
            stream=True,
            extra_headers={"x-fake-fault": "cut_stream:2"},
        )
        for chunk in stream:
            received.append(chunk.choices[0].delta)
    assert len(received) == 2  # the role delta and the first content delta, then no [DONE]
    assert received[0].role == "assistant" and received[1].content == "echo: "


def test_slow_drip_spaces_chunks(client: openai.OpenAI) -> None:
    start = time.monotonic()
    assert ask(client, "slow_drip:0.05", stream=True) == "echo: hello there"
    assert time.monotonic() - start >= 0.05 * 5  # 6 events after the first
    start = time.monotonic()
    assert ask(client, "slow_drip:0.02") == "echo: hello there"
    assert time.monotonic() - start >= 0.02 * 5


def test_fault_from_request_metadata(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError, match="injected fault 502"):
        client.chat.completions.create(model="small", messages=USER, metadata={"fault": "502"})


def test_server_fault_with_count_then_healthy(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    upstream.set_fault("503", count=1)
    assert ask(client, "none") == "echo: hello there"  # a header "none" overrides the server
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="small", messages=USER)
    assert client.chat.completions.create(model="small", messages=USER).choices[0].message.content


def test_control_endpoint_switches_faults_at_run_time(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    control = upstream.url + "/_control"
    state = httpx.post(control, json={"fault": "500", "count": 2, "reset_stats": True}).json()
    assert state["schedule"] == {"fault": "500", "probability": 1.0, "remaining": 2}
    outcomes = []
    for _ in range(3):
        try:
            client.chat.completions.create(model="small", messages=USER)
            outcomes.append("ok")
        except openai.InternalServerError:
            outcomes.append("500")
    assert outcomes == ["500", "500", "ok"]
    counts = httpx.get(upstream.url + "/_stats").json()["counts"]
    assert counts["POST /v1/chat/completions"] == 3 and counts["fault 500"] == 2
    assert httpx.post(control, json={"fault": "bogus"}).status_code == 400


def test_fault_probability_is_seeded() -> None:
    schedule = FaultSchedule("500", probability=0.3, seed=1)
    draws = [schedule.draw() for _ in range(1000)]
    assert 250 < sum(d is not None for d in draws) < 350
    again = FaultSchedule("500", probability=0.3, seed=1)
    assert [again.draw() for _ in range(1000)] == draws


def test_parse_fault() -> None:
    assert parse_fault("cut_stream:3") == Fault("cut_stream", 3.0)
    assert parse_fault("429") == Fault("429", 1.0)
    assert parse_fault("none") is None
    assert str(parse_fault("slow_drip:0.5")) == "slow_drip:0.5"
    with pytest.raises(ValueError, match="takes no argument"):
        parse_fault("500:2")
    with pytest.raises(ValueError, match="unknown fault"):
        parse_fault("boom")


# -- running it ------------------------------------------------------------------------------


def test_stop_refuses_connections_and_restart_reuses_the_port() -> None:
    up = FakeUpstream().start()
    try:
        base = up.base_url
        up.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.get(up.url + "/health")
        up.start()
        assert up.base_url == base
        assert httpx.get(up.url + "/health").status_code == 200
    finally:
        up.stop()


def test_stop_is_quick_with_a_hanging_request() -> None:
    up = FakeUpstream(fault="hang").start()
    sock = socket.create_connection(("127.0.0.1", up.port))
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 27\r\n\r\n")
    sock.sendall(b'{"model":"m","prompt":"p"}\n')
    time.sleep(0.1)
    start = time.monotonic()
    up.stop()
    sock.close()
    assert time.monotonic() - start < 1.5


async def test_async_context_manager() -> None:
    async with (
        FakeUpstream(chunks=2) as up,
        openai.AsyncOpenAI(base_url=up.base_url, api_key="x", max_retries=0) as c,
    ):
        reply = await c.chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
        assert reply.choices[0].message.content == "echo: hello there"


def test_cli_prints_its_url_and_serves() -> None:
    cmd = [
        sys.executable,
        "-m",
        "tests.support.fake_upstream",
        "--models",
        "a,b",
        "--lifetime",
        "20",
    ]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        try:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line.startswith("READY http://127.0.0.1:")
            base = line.split()[1]
            models = httpx.get(base + "/models").json()
            assert [m["id"] for m in models["data"]] == ["a", "b"]
        finally:
            proc.terminate()
            proc.wait(10)
