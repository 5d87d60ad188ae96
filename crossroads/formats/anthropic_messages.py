"""Anthropic Messages: ``POST /v1/messages`` bodies, ``message`` answers and the Messages
stream (``message_start`` ... ``message_stop``), to and from the canonical types, for
clients (parse, render, stream encoder) and for Anthropic upstreams (encode_request,
parse_response, stream_decoder).

What a canonical request cannot say to Anthropic:

* a JSON ``response_format`` has no Anthropic equivalent: it becomes a system instruction
  asking for JSON only (with the schema, if one is given). It is a request to the model, not a
  guarantee.
* ``seed`` and OpenAI's ``metadata`` are dropped; ``temperature`` passes through unchanged
  (Anthropic accepts 0..1 and says so in its 400 if a client sends more).
* Content parts other than text and images (audio, files) are refused with a 400.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from crossroads.dispatch.sse import shape_checked
from crossroads.exceptions import RequestEncodingError, UpstreamProtocolError
from crossroads.formats.base import (
    answer_object,
    json_text,
    load_json,
    max_tokens,
    token_count,
    validate,
)
from crossroads.formats.openai_chat import image_part
from crossroads.types import (
    Choice,
    Message,
    Part,
    Request,
    Response,
    ResponseFormat,
    StreamEvent,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)

NAME = "anthropic_messages"
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class Block(_Open):
    type: Literal[
        "text", "image", "tool_use", "tool_result", "document", "thinking", "redacted_thinking"
    ]
    text: str | None = None
    content: str | list[Block] | None = None  # a tool_result's


class MessageModel(_Open):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class ToolModel(_Open):
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any]


class ToolChoice(_Open):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class MessagesBody(_Open):
    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    messages: list[MessageModel] = Field(min_length=1)
    system: str | list[Block] | None = None
    tools: list[ToolModel] | None = None
    tool_choice: ToolChoice | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    stream: bool = False
    metadata: dict[str, Any] | None = None


def parse(raw: bytes) -> Request:
    """The canonical request for a raw body; a 400 names the field to fix."""
    return parse_request(load_json(raw))


def parse_request(body: dict[str, Any]) -> Request:
    """The canonical request for a Messages body."""
    validate(MessagesBody, body)
    messages: list[Message] = []
    system = body.get("system")
    if system:
        text = (
            system
            if isinstance(system, str)
            else "\n".join(b.get("text") or "" for b in system if b.get("type") == "text")
        )
        messages.append(Message("system", text))
    for i, m in enumerate(body["messages"]):
        messages.extend(_turn(m, i))
    choice = body.get("tool_choice") or {}
    kind = choice.get("type")
    tool_choice = (
        {"auto": "auto", "any": "required", "none": "none"}.get(kind)
        if kind != "tool"
        else choice.get("name")
    )
    metadata = body.get("metadata") or {}
    return Request(
        operation="chat",
        model=body["model"],
        source=NAME,
        messages=messages,
        tools=[
            Tool(t["name"], t.get("description"), t["input_schema"])
            for t in body.get("tools") or ()
        ],
        tool_choice=tool_choice,
        parallel_tool_calls=False if choice.get("disable_parallel_tool_use") else None,
        max_tokens=body["max_tokens"],
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        top_k=body.get("top_k"),
        stop=list(body.get("stop_sequences") or ()),
        stream=bool(body.get("stream")),
        include_usage=True,
        user=str(metadata["user_id"]) if metadata.get("user_id") is not None else None,
        wire=body,
    )


def count_tokens(raw: bytes) -> bytes:
    """``POST /v1/messages/count_tokens``: ``{"input_tokens": n}`` for a Messages body
    without ``max_tokens``. The count is the gateway's own estimate (the tokenizer its cost
    estimates use), not the model's: close, not exact."""
    from crossroads.prompts import routing_request

    body = load_json(raw)
    body.setdefault("max_tokens", 1)
    return orjson.dumps({"input_tokens": routing_request(parse_request(body)).prompt_tokens})


def _turn(m: dict[str, Any], i: int) -> list[Message]:
    from crossroads.exceptions import InvalidRequestError

    content = m["content"]
    if isinstance(content, str):
        return [Message(m["role"], content)]
    out: list[Message] = []
    parts: list[Part] = []
    calls: list[ToolCall] = []
    for j, block in enumerate(content):
        kind = block["type"]
        where = f"messages[{i}].content[{j}]"
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise InvalidRequestError(
                    f"Invalid '{where}.text': a text block needs a string 'text'.",
                    param=f"{where}.text",
                )
            parts.append(Part("text", block["text"]))
        elif kind == "image":
            source = block.get("source") or {}
            if source.get("type") == "base64" and isinstance(source.get("data"), str):
                parts.append(
                    image_part(
                        f"data:{source.get('media_type', 'image/png')};base64,{source['data']}"
                    )
                )
            elif source.get("type") == "url" and isinstance(source.get("url"), str):
                parts.append(Part("image", url=source["url"]))
            else:
                raise InvalidRequestError(
                    f"Invalid '{where}.source': give a base64 or url image source.",
                    param=f"{where}.source",
                )
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise InvalidRequestError(
                    f"Invalid '{where}': a tool_use block needs 'id' and 'name'.", param=where
                )
            calls.append(
                ToolCall(
                    block["id"],
                    block["name"],
                    json_text(block.get("input") or {}, f"{where}.input"),
                )
            )
        elif kind == "tool_result":
            if not isinstance(block.get("tool_use_id"), str):
                raise InvalidRequestError(
                    f"Invalid '{where}.tool_use_id': a tool_result block needs it.",
                    param=f"{where}.tool_use_id",
                )
            result = block.get("content")
            text = (
                result
                if isinstance(result, str)
                else "\n".join(
                    r.get("text") or ""
                    for r in result or ()
                    if isinstance(r, dict) and r.get("type") == "text"
                )
            )
            out.append(Message("tool", text, tool_call_id=block["tool_use_id"]))
        # thinking and documents have no canonical form: dropped
    if parts or calls or not out:
        text_only = all(p.type == "text" for p in parts)
        merged: str | list[Part] = "".join(p.text for p in parts) if text_only else parts
        out.append(Message(m["role"], merged, calls))
    return out


def render_response(response: Response, request: Request) -> bytes:
    """The Anthropic ``message`` body for the client (the upstream's own, if it spoke
    Messages too)."""
    if response.raw is not None and response.source == NAME:
        return response.raw
    choice = response.choices[0] if response.choices else None
    content: list[dict[str, Any]] = []
    if choice is not None:
        if choice.text:
            content.append({"type": "text", "text": choice.text})
        for call in choice.tool_calls:
            content.append(
                {
                    "type": "tool_use",
                    "id": call.id,
                    "name": call.name,
                    "input": _arguments(call.arguments),
                }
            )
    usage = response.usage or Usage()
    return orjson.dumps(
        {
            "id": _message_id(response.id),
            "type": "message",
            "role": "assistant",
            "model": response.model or request.model,
            "content": content,
            "stop_reason": STOP_REASONS.get(choice.finish_reason or "stop", "end_turn")
            if choice
            else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": usage.prompt_tokens,
                "output_tokens": usage.completion_tokens,
            },
        }
    )


def _message_id(upstream_id: str) -> str:
    return upstream_id if upstream_id.startswith("msg_") else f"msg_{upstream_id or time.time_ns()}"


def _arguments(text: str) -> Any:
    try:
        return orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {"_raw": text}


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


class MessagesStreamEncoder:
    """Canonical events as the Messages stream: one content block per text run or tool call."""

    def __init__(self, request: Request, trace_id: str) -> None:
        self.model = request.model
        self.id = f"msg_{trace_id}"
        self.block: int = -1
        self.block_kind: str | None = None
        self.tools: dict[int, int] = {}  # canonical tool index -> block index
        self.stop = "end_turn"
        self.input_tokens = 0

    def start(self) -> bytes:
        return _event(
            "message_start",
            {
                "message": {
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                }
            },
        )

    def _close_block(self) -> bytes:
        if self.block_kind is None:
            return b""
        self.block_kind = None
        return _event("content_block_stop", {"index": self.block})

    def encode(self, event: StreamEvent) -> bytes:
        out = b""
        if event.text:
            if self.block_kind != "text":
                out += self._close_block()
                self.block += 1
                self.block_kind = "text"
                out += _event(
                    "content_block_start",
                    {"index": self.block, "content_block": {"type": "text", "text": ""}},
                )
            out += _event(
                "content_block_delta",
                {"index": self.block, "delta": {"type": "text_delta", "text": event.text}},
            )
        for call in event.tool_calls or ():
            if call.index not in self.tools:
                out += self._close_block()
                self.block += 1
                self.block_kind = "tool_use"
                self.tools[call.index] = self.block
                out += _event(
                    "content_block_start",
                    {
                        "index": self.block,
                        "content_block": {
                            "type": "tool_use",
                            "id": call.id or f"toolu_{self.block}",
                            "name": call.name or "",
                            "input": {},
                        },
                    },
                )
            if call.arguments:
                out += _event(
                    "content_block_delta",
                    {
                        "index": self.tools[call.index],
                        "delta": {"type": "input_json_delta", "partial_json": call.arguments},
                    },
                )
        if event.finish_reason is not None:
            self.stop = STOP_REASONS.get(event.finish_reason, "end_turn")
        return out

    def finish(self, usage: Usage | None) -> bytes:
        usage = usage or Usage()
        return (
            self._close_block()
            + _event(
                "message_delta",
                {
                    "delta": {"stop_reason": self.stop, "stop_sequence": None},
                    "usage": {
                        "input_tokens": usage.prompt_tokens,
                        "output_tokens": usage.completion_tokens,
                    },
                },
            )
            + _event("message_stop", {})
        )

    def error(self, status: int, payload: bytes) -> bytes:
        return b"event: error\ndata: " + payload + b"\n\n"


def stream_encoder(request: Request, trace_id: str) -> MessagesStreamEncoder:
    """The encoder for a client that asked for a Messages stream."""
    return MessagesStreamEncoder(request, trace_id)


def error_body(status: int, message: str, error_type: str, code: str | None, param: Any) -> bytes:
    """An error in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}``."""
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


# --------------------------------------------------------------------------- to an upstream

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
TOOL_CHOICES = {"auto": "auto", "required": "any", "none": "none"}
JSON_ONLY = "Answer with a single valid JSON object and nothing else: no prose, no code fences."
# A batch of stream events with none of these is text and tool deltas only: a client that
# speaks Messages too gets it forwarded unread.
STREAM_MARKS = (b'"message_start"', b'"message_delta"', b'"message_stop"', b'"error"')
LAST_EVENT = "'message_stop'"

Turn = dict[str, Any]


def encode_request(request: Request, model_id: str, cap: int | None) -> dict[str, Any]:
    """The Messages body to send an Anthropic upstream for ``request``: the client's own
    body (model and output cap replaced) when it spoke Messages, else a translation. With no
    ``max_tokens`` anywhere, the upstream adds its ``default_max_tokens`` (Anthropic needs
    one). Raises :class:`RequestEncodingError` (400) for what Anthropic cannot express."""
    wire = request.wire
    limit = max_tokens(request.max_tokens, cap)
    if wire is not None and request.source == NAME:
        out = {**wire, "model": model_id}
        if limit is not None:
            out["max_tokens"] = limit
    else:
        out = _build(request, model_id, limit)
    if request.stream:
        out["stream"] = True
    return out


def _build(request: Request, model_id: str, limit: int | None) -> dict[str, Any]:
    system: list[str] = []
    turns: list[Turn] = []
    for m in request.messages:
        if m.role == "system":
            text = _text_only(m.content, "system")
            if text:
                system.append(text)
        elif m.role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id,
                "content": _text_only(m.content, "tool"),
            }
            turns.append({"role": "user", "content": [result]})
        else:
            blocks = _blocks(m.content)
            if m.role == "assistant":
                blocks += [_tool_use(call) for call in m.tool_calls]
            turns.append({"role": m.role, "content": blocks})
    instruction = _format_instruction(request.response_format)
    if instruction:
        system.append(instruction)
    out: dict[str, Any] = {"model": model_id, "messages": merge_turns(turns)}
    if limit is not None:
        out["max_tokens"] = limit
    if system:
        out["system"] = "\n\n".join(system)
    for key in ("temperature", "top_p", "top_k"):
        value = getattr(request, key)
        if value is not None:
            out[key] = value
    if request.stop:
        out["stop_sequences"] = list(request.stop)
    if request.user:
        out["metadata"] = {"user_id": request.user}
    if request.tools:
        out["tools"] = [
            {
                "name": t.name,
                **({"description": t.description} if t.description else {}),
                "input_schema": t.parameters or {"type": "object", "properties": {}},
            }
            for t in request.tools
        ]
        choice = tool_choice(request.tool_choice, request.parallel_tool_calls)
        if choice is not None:
            out["tool_choice"] = choice
    return out


def merge_turns(turns: list[Turn]) -> list[Turn]:
    """Drop empty turns and merge consecutive same-role ones: Anthropic needs alternation.
    In a user turn, ``tool_result`` blocks go first, as Anthropic requires."""
    merged: list[Turn] = []
    for turn in turns:
        if not turn["content"]:
            continue
        if merged and merged[-1]["role"] == turn["role"]:
            merged[-1]["content"].extend(turn["content"])
        else:
            merged.append({"role": turn["role"], "content": list(turn["content"])})
    for turn in merged:
        if turn["role"] == "user":
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return merged


def _blocks(content: str | list[Part]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if part.type == "text":
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        elif part.type == "image":
            blocks.append(_image(part))
        else:
            kind = (part.raw or {}).get("type", "other")
            raise RequestEncodingError(
                f"Content parts of type {kind!r} cannot be sent to an Anthropic model."
            )
    return blocks


def _image(part: Part) -> dict[str, Any]:
    if part.data is not None:
        source = {"type": "base64", "media_type": part.media_type or "image/png", "data": part.data}
        return {"type": "image", "source": source}
    url = part.url or ""
    if url.startswith("data:"):
        raise RequestEncodingError(
            f"Image data URLs must be base64 ('data:image/png;base64,...'): {url[:40]!r}."
        )
    return {"type": "image", "source": {"type": "url", "url": url}}


def _tool_use(call: ToolCall) -> dict[str, Any]:
    try:
        tool_input = orjson.loads(call.arguments or "{}")
    except orjson.JSONDecodeError:
        raise RequestEncodingError(
            f"Tool call {call.id!r} has arguments that are not JSON: {call.arguments[:100]!r}."
        ) from None
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input}


def tool_choice(choice: str | None, parallel: bool | None = None) -> dict[str, Any] | None:
    """auto → auto, required → any, none → none, a tool's name → that tool."""
    if choice is not None:
        kind = TOOL_CHOICES.get(choice)
        out: dict[str, Any] = {"type": kind} if kind else {"type": "tool", "name": choice}
    elif parallel is False:
        out = {"type": "auto"}
    else:
        return None
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _text_only(content: str | list[Part], role: str) -> str:
    blocks = _blocks(content)
    if any(block["type"] != "text" for block in blocks):
        raise RequestEncodingError(f"{role.capitalize()} messages may only contain text.")
    return "\n".join(block["text"] for block in blocks)


def _format_instruction(fmt: ResponseFormat | None) -> str | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_schema" and fmt.schema:
        return f"{JSON_ONLY} It must match this JSON schema: {orjson.dumps(fmt.schema).decode()}"
    return JSON_ONLY


# --------------------------------------------------------------------------- from an upstream


def usage_from(usage: Any) -> Usage | None:
    """Canonical usage from Anthropic's; cached input counts as prompt tokens."""
    if not isinstance(usage, dict):
        return None
    prompt = sum(
        token_count(usage.get(key))
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return Usage(prompt, token_count(usage.get("output_tokens")))


def finish_reason(stop_reason: Any) -> Any:
    """The canonical finish reason for Anthropic's ``stop_reason``."""
    return FINISH_REASONS.get(stop_reason, "stop") if stop_reason else None


@shape_checked
def parse_response(raw: bytes, upstream: str) -> Response:
    """The canonical answer for an upstream's ``message`` body."""
    data = answer_object(raw, upstream, "content")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in data["content"]:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text") or ""))
        elif block.get("type") == "tool_use":
            calls.append(
                ToolCall(
                    str(block.get("id") or ""),
                    str(block.get("name") or ""),
                    orjson.dumps(block.get("input") or {}).decode(),
                )
            )
    choice = Choice(
        0, "".join(texts) if texts else None, calls, finish_reason(data.get("stop_reason"))
    )
    return Response(
        str(data.get("id") or ""),
        data.get("model"),
        int(time.time()),
        [choice],
        usage_from(data.get("usage")),
        NAME,
        raw,
    )


class MessagesStreamDecoder:
    """An upstream's Messages stream as canonical events, one per frame (``raw`` kept for
    pass-through). Anthropic numbers content blocks; tool calls are numbered among
    themselves. Usage: input tokens from ``message_start``, output from ``message_delta``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.input: dict[str, Any] = {}
        self.tools: dict[int, int] = {}  # block index -> tool call index

    def __call__(self, frame: bytes, data: bytes) -> StreamEvent:
        return self._decode(frame, data, self.upstream)

    @shape_checked
    def _decode(self, frame: bytes, data: bytes, upstream: str) -> StreamEvent:
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict):
            raise UpstreamProtocolError(
                f"upstream {self.upstream!r} sent a stream event that is not a JSON object: "
                f"{data[:200]!r}",
                upstream=self.upstream,
            )
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return StreamEvent(text=delta.get("text") or None, raw=frame)
            if delta.get("type") == "input_json_delta":
                index = self.tools.get(event.get("index", 0))
                fragment = delta.get("partial_json") or ""
                if index is not None and fragment:
                    call = ToolCallDelta(index, None, None, fragment)
                    return StreamEvent(tool_calls=[call], raw=frame)
            return StreamEvent(raw=frame)  # thinking and signature deltas
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "text":
                return StreamEvent(text=block.get("text") or None, raw=frame)
            if block.get("type") == "tool_use":
                index = self.tools.setdefault(event.get("index", 0), len(self.tools))
                call = ToolCallDelta(index, block.get("id"), block.get("name"), "")
                return StreamEvent(tool_calls=[call], raw=frame)
            return StreamEvent(raw=frame)
        if kind == "message_start":
            message = event.get("message") or {}
            self.input = message.get("usage") or {}
            return StreamEvent(
                role="assistant", id=message.get("id"), model=message.get("model"), raw=frame
            )
        if kind == "message_delta":
            usage = usage_from({**self.input, **(event.get("usage") or {})})
            reason = finish_reason((event.get("delta") or {}).get("stop_reason"))
            return StreamEvent(finish_reason=reason or "stop", usage=usage, raw=frame)
        if kind == "message_stop":
            return StreamEvent(raw=frame, done=True)
        if kind == "error":
            error = event.get("error") or {}
            raise UpstreamProtocolError(
                f"upstream {self.upstream!r} sent an error mid-stream "
                f"({error.get('type', 'error')}): {error.get('message', '')}",
                upstream=self.upstream,
                status=503 if error.get("type") == "overloaded_error" else None,
            )
        return StreamEvent(raw=frame)  # ping, content_block_stop, event types added later


def stream_decoder(upstream: str) -> MessagesStreamDecoder:
    """A decoder for one upstream stream (it keeps the stream's state)."""
    return MessagesStreamDecoder(upstream)


__all__ = [
    "NAME",
    "ResponseFormat",
    "encode_request",
    "error_body",
    "parse",
    "parse_response",
    "render_response",
    "stream_decoder",
    "stream_encoder",
]
