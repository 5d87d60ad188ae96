"""A small fake of Anthropic's Messages API on loopback: test equipment for the Anthropic upstream.

``POST /v1/messages`` checks what a faulty translation would get wrong (``x-api-key``,
``anthropic-version``, ``max_tokens``, user/assistant alternation starting with a user turn,
``tool_result`` blocks first in their turn) and answers with Anthropic's 400/401 bodies if so.
Otherwise it replies:

* a ``tool_use`` of the forced tool when ``tool_choice`` is ``{"type": "tool"}`` (or the first
  tool for ``{"type": "any"}``), with input ``{"text": <last user text>}``;
* else the text ``"echo: <last user text>"``;
* as SSE (``event:`` and ``data:`` lines, a ``ping``, the text in ``chunks`` deltas, tool
  input in two ``input_json_delta`` fragments) when ``"stream": true``.

Faults: ``fail_status`` answers every request with that status and Anthropic's error body
(529 is ``overloaded_error``; its message is ``fail_message``, default ``"injected <status>"``); ``stream_fault="error"`` sends an ``error`` event after the
first text delta, ``"cut"`` ends the stream before ``message_stop``. ``requests`` keeps the
headers and body of every request::

    with FakeAnthropic() as fake:
        config = {"kind": "anthropic", "name": "claude", "base_url": fake.url, ...}
"""

from __future__ import annotations

from typing import Any

import orjson

from tests.support.server_thread import BackgroundServer

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [b.get("text", "") for b in content if b.get("type") == "text"]
        texts = texts or [
            str(b.get("content", "")) for b in content if b.get("type") == "tool_result"
        ]
        return " ".join(texts)
    return ""


def _problem(headers: dict[str, str], body: dict[str, Any]) -> tuple[int, str] | None:
    """What Anthropic would reject, as (status, message)."""
    if not headers.get("x-api-key"):
        return 401, "x-api-key header is required"
    if not headers.get("anthropic-version"):
        return 400, "anthropic-version: header is required"
    if not isinstance(body.get("max_tokens"), int):
        return 400, "max_tokens: Field required"
    messages = body.get("messages") or []
    if not messages or messages[0].get("role") != "user":
        return 400, "messages: first message must use the user role"
    for i, (a, b) in enumerate(zip(messages, messages[1:], strict=False)):
        if a.get("role") == b.get("role"):
            return 400, f"messages.{i + 1}: roles must alternate between user and assistant"
    for i, message in enumerate(messages):
        content = message.get("content") or []
        if isinstance(content, str):  # the API accepts a string for one text block
            continue
        kinds = [block.get("type") for block in content]
        others = next((j for j, kind in enumerate(kinds) if kind != "tool_result"), len(kinds))
        if "tool_result" in kinds[others:]:
            return 400, f"messages.{i}: tool_result blocks must come first in their turn"
    return None


def reply_message(body: dict[str, Any], message_id: str) -> dict[str, Any]:
    """The (non-streamed) Anthropic message the fake answers ``body`` with."""
    text = _last_user_text(body.get("messages") or [])
    tools, choice = body.get("tools") or [], body.get("tool_choice") or {}
    forced = choice.get("name") if choice.get("type") == "tool" else None
    if choice.get("type") == "any" and tools:
        forced = tools[0]["name"]
    if forced:
        content = [
            {
                "type": "tool_use",
                "id": f"toolu_{message_id}",
                "name": forced,
                "input": {"text": text},
            }
        ]
        stop, out_tokens = "tool_use", 5
    else:
        content = [{"type": "text", "text": f"echo: {text}"}]
        stop, out_tokens = "end_turn", len(content[0]["text"].split())
    prompt = orjson.dumps([body.get("system"), body.get("messages")]).decode()
    return {
        "id": f"msg_{message_id}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": len(prompt.split()), "output_tokens": out_tokens},
    }


def stream_events(message: dict[str, Any], chunks: int, fault: str | None) -> list[dict[str, Any]]:
    """The SSE events of ``message`` as Anthropic streams them, with an optional fault."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            text = block["text"]
            step = max(1, -(-len(text) // chunks))
            deltas = [
                {"type": "text_delta", "text": text[i : i + step]}
                for i in range(0, len(text), step)
            ]
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                }
            )
        else:
            raw = orjson.dumps(block["input"]).decode()
            half = len(raw) // 2
            deltas = [
                {"type": "input_json_delta", "partial_json": part}
                for part in (raw[:half], raw[half:])
            ]
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {**block, "input": {}},
                }
            )
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    if fault == "error":  # after message_start, ping, the first block start and delta
        return [
            *events[:4],
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        ]
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        }
    )
    if fault == "cut":
        return events
    return [*events, {"type": "message_stop"}]


class FakeAnthropicApp:
    """The raw ASGI application; settings are plain attributes a test may change."""

    def __init__(
        self, chunks: int = 3, fail_status: int | None = None, stream_fault: str | None = None
    ) -> None:
        self.chunks = chunks
        self.fail_status = fail_status
        self.fail_message: str | None = None
        self.stream_fault = stream_fault
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self._count = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        if (scope["method"], scope["path"]) != ("POST", "/v1/messages"):
            return await self._error(send, 404, f"{scope['method']} {scope['path']} not found")
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = orjson.loads(raw)
        self.requests.append((headers, body))
        if self.fail_status:
            message = self.fail_message or f"injected {self.fail_status}"
            return await self._error(send, self.fail_status, message)
        problem = _problem(headers, body)
        if problem:
            return await self._error(send, *problem)
        self._count += 1
        message = reply_message(body, f"fake{self._count:04d}")
        if not body.get("stream"):
            return await self._send(send, 200, JSON_HEADERS, orjson.dumps(message))
        events = stream_events(message, self.chunks, self.stream_fault)
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        for event in events:
            frame = (
                b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
            )
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _error(self, send: Any, status: int, message: str) -> None:
        kind = ERROR_TYPES.get(status, "api_error")
        body = {"type": "error", "error": {"type": kind, "message": message}}
        await self._send(send, status, JSON_HEADERS, orjson.dumps(body))

    @staticmethod
    async def _send(
        send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class FakeAnthropic(BackgroundServer):
    """:class:`FakeAnthropicApp` under uvicorn on a free 127.0.0.1 port, in a thread.

    Use ``with FakeAnthropic() as fake:`` (or ``async with``); ``fake.url`` is the
    ``base_url`` of an Anthropic upstream; ``fake.app`` holds settings and ``requests``.
    """

    name = "fake-anthropic"

    def __init__(self, **options: Any) -> None:
        super().__init__(FakeAnthropicApp(**options))
