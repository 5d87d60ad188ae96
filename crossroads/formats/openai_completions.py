"""OpenAI (legacy) Completions: ``POST /v1/completions`` with a ``prompt``, ``text_completion``
answers and streams. Only OpenAI-style upstreams serve it, so bodies pass through."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, NotRequired

import orjson
from pydantic import ConfigDict, Field, TypeAdapter, with_config

from crossroads.dispatch.sse import DONE, parse_event, shape_checked
from crossroads.formats.base import answer_object, bound_decoder, load_json, max_tokens, validate
from crossroads.formats.openai_chat import (  # the same SSE framing: the same marks
    LAST_EVENT,
    STREAM_MARKS,
    Sampling,
    error_body,
    usage_from,
    usage_json,
)
from crossroads.types import Choice, Request, Response, StreamEvent, Usage

NAME = "openai_completions"
__all__ = [
    "LAST_EVENT",
    "NAME",
    "STREAM_MARKS",
    "error_body",
    "parse",
    "parse_request",
    "render_response",
    "stream_decoder",
]


@with_config(ConfigDict(extra="allow", strict=True))
class CompletionBody(Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: NotRequired[bool | None]
    logprobs: NotRequired[Annotated[int, Field(ge=0, le=5)] | None]


COMPLETION_BODY = TypeAdapter(CompletionBody)


def parse(raw: bytes) -> Request:
    """The canonical request for a raw body; a 400 names the field to fix."""
    return parse_request(load_json(raw))


def parse_request(body: dict[str, Any]) -> Request:
    """The canonical request for a Completions body."""
    validate(COMPLETION_BODY, body)
    stop = body.get("stop")
    return Request(
        operation="completions",
        model=body["model"],
        source=NAME,
        prompt=body["prompt"],
        max_tokens=body.get("max_tokens"),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        stop=[stop] if isinstance(stop, str) else list(stop or ()),
        seed=body.get("seed"),
        stream=bool(body.get("stream")),
        include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
        user=body.get("user"),
        wire=body,
    )


def encode_request(request: Request, model_id: str, cap: int | None) -> dict[str, Any]:
    """The body for an OpenAI-compatible upstream's ``/completions``."""
    if request.wire is not None and request.source == NAME:
        out = {**request.wire, "model": model_id}
    else:
        out = {"model": model_id, "prompt": request.prompt or ""}
        for key in ("temperature", "top_p", "seed", "user"):
            if getattr(request, key) is not None:
                out[key] = getattr(request, key)
        if request.stop:
            out["stop"] = request.stop
    limit = max_tokens(request.max_tokens, cap)
    if limit is not None:
        out["max_tokens"] = limit
    if request.stream:
        out["stream"] = True
        out["stream_options"] = {**(out.get("stream_options") or {}), "include_usage": True}
    return out


@shape_checked
def parse_response(raw: bytes, upstream: str) -> Response:
    """The canonical answer for a ``text_completion`` body."""
    data = answer_object(raw, upstream, "choices")
    choices = [
        Choice(c.get("index", 0), c.get("text"), finish_reason=c.get("finish_reason"))
        for c in data["choices"]
    ]
    return Response(
        data.get("id") or "",
        data.get("model"),
        data.get("created") or int(time.time()),
        choices,
        usage_from(data),
        NAME,
        raw,
    )


def render_response(response: Response, request: Request) -> bytes:
    """The ``text_completion`` body for the client."""
    if response.source == NAME and response.raw is not None:
        return response.raw
    body: dict[str, Any] = {
        "id": response.id or f"cmpl-{time.time_ns():x}",
        "object": "text_completion",
        "created": response.created,
        "model": response.model or request.model,
        "choices": [
            {
                "index": c.index,
                "text": c.text or "",
                "logprobs": None,
                "finish_reason": c.finish_reason,
            }
            for c in response.choices
        ],
    }
    if response.usage is not None:
        body["usage"] = usage_json(response.usage)
    return orjson.dumps(body)


def stream_decoder(upstream: str) -> Callable[[bytes, bytes], StreamEvent]:
    """A decoder for one upstream stream: ``decode(frame, data)`` → one canonical event."""
    return bound_decoder(decode_event, upstream)


@shape_checked
def decode_event(frame: bytes, data: bytes, upstream: str) -> StreamEvent:
    """The canonical event for one streamed ``text_completion`` chunk."""
    if data == b"[DONE]":
        return StreamEvent(raw=frame, done=True)
    chunk = parse_event(data, upstream)
    event = StreamEvent(raw=frame, id=chunk.get("id"), model=chunk.get("model"))
    if chunk.get("usage"):
        event.usage = usage_from(chunk)
    choices = chunk.get("choices")
    if choices:
        event.index = choices[0].get("index") or 0
        event.text = choices[0].get("text")
        event.finish_reason = choices[0].get("finish_reason")
    elif event.usage is not None:
        event.usage_only = True
    return event


class CompletionStreamEncoder:
    """Canonical events as streamed ``text_completion`` frames."""

    def __init__(self, request: Request, trace_id: str) -> None:
        self.include_usage = request.include_usage
        self.model = request.model
        self.id = f"cmpl-{trace_id}"
        self.created = int(time.time())

    def _frame(self, choices: list[Any], usage: Usage | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage_json(usage)
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def start(self) -> bytes:
        return b""

    def encode(self, event: StreamEvent) -> bytes:
        if not event.text and event.finish_reason is None:
            return b""
        choice = {
            "index": event.index,
            "text": event.text or "",
            "logprobs": None,
            "finish_reason": event.finish_reason,
        }
        return self._frame([choice])

    def finish(self, usage: Usage | None) -> bytes:
        tail = self._frame([], usage) if self.include_usage and usage is not None else b""
        return tail + DONE

    def error(self, status: int, payload: bytes) -> bytes:
        return b"data: " + payload + b"\n\n" + DONE


def stream_encoder(request: Request, trace_id: str) -> CompletionStreamEncoder:
    """The encoder for a client that asked for a completions stream."""
    return CompletionStreamEncoder(request, trace_id)
