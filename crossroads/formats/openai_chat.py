"""OpenAI Chat Completions: ``POST /v1/chat/completions`` bodies, ``chat.completion`` answers
and ``chat.completion.chunk`` streams, to and from the canonical types.

Validation checks the shape and ranges of the fields crossroads reads or that clients most
often get wrong; every other field is kept in ``Request.wire`` and reaches an OpenAI-style
upstream unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal, NotRequired

import orjson
from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

from crossroads.dispatch.sse import DONE, parse_event, shape_checked
from crossroads.formats.base import (
    answer_object,
    bound_decoder,
    load_json,
    max_tokens,
    token_count,
    validate,
)
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

NAME = "openai_chat"


# --------------------------------------------------------------------------- validation
# TypedDicts, not BaseModels: validating builds no model instances (the body stays the dict
# it is), which costs about a third of validating the same schema as models.

_OPEN = ConfigDict(extra="allow", strict=True)


@with_config(_OPEN)
class TextPart(TypedDict):
    type: Literal["text"]
    text: str


@with_config(_OPEN)
class ImageUrl(TypedDict):
    url: str


@with_config(_OPEN)
class ImagePart(TypedDict):
    type: Literal["image_url"]
    image_url: ImageUrl | str


@with_config(_OPEN)
class RefusalPart(TypedDict):
    type: Literal["refusal"]
    refusal: str


@with_config(_OPEN)
class OtherPart(TypedDict):
    type: Literal["input_audio", "file", "input_image"]


ContentPart = Annotated[TextPart | ImagePart | RefusalPart | OtherPart, Field(discriminator="type")]


@with_config(_OPEN)
class FunctionCall(TypedDict):
    name: Annotated[str, Field(min_length=1)]
    arguments: str


@with_config(_OPEN)
class ToolCallModel(TypedDict):
    id: Annotated[str, Field(min_length=1)]
    type: NotRequired[Literal["function"]]
    function: FunctionCall


def _when(roles: list[str], then: dict[str, Any]) -> dict[str, Any]:
    return {"if": {"properties": {"role": {"enum": roles}}}, "then": then}


_NOT_NULL = {"not": {"type": "null"}}

# The JSON schema says what ``_content_needed`` checks, for the OpenAPI document.
_MESSAGE_RULES = {
    "allOf": [
        _when(
            ["system", "developer", "user"],
            {"required": ["content"], "properties": {"content": _NOT_NULL}},
        ),
        _when(
            ["tool"],
            {
                "required": ["tool_call_id"],
                "properties": {"tool_call_id": {"type": "string", "minLength": 1}},
            },
        ),
        _when(
            ["assistant"],
            {
                "anyOf": [
                    {"required": ["content"], "properties": {"content": _NOT_NULL}},
                    {
                        "required": ["tool_calls"],
                        "properties": {"tool_calls": {"type": "array", "minItems": 1}},
                    },
                ]
            },
        ),
    ]
}


@with_config(ConfigDict(extra="allow", strict=True, json_schema_extra=_MESSAGE_RULES))
class MessageFields(TypedDict):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: NotRequired[str | list[ContentPart] | None]
    name: NotRequired[str | None]
    tool_calls: NotRequired[list[ToolCallModel] | None]
    tool_call_id: NotRequired[str | None]


def _content_needed(m: MessageFields) -> MessageFields:
    role = m["role"]
    if m.get("content") is None and role in ("system", "developer", "user"):
        raise ValueError(f"a {role} message needs 'content'")
    if role == "tool" and not m.get("tool_call_id"):
        raise ValueError("a tool message needs 'tool_call_id'")
    if role == "assistant" and m.get("content") is None and not m.get("tool_calls"):
        raise ValueError("an assistant message needs 'content' or 'tool_calls'")
    return m


MessageModel = Annotated[MessageFields, AfterValidator(_content_needed)]


@with_config(_OPEN)
class FunctionDef(TypedDict):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    description: NotRequired[str | None]
    parameters: NotRequired[dict[str, Any] | None]


@with_config(_OPEN)
class ToolModel(TypedDict):
    type: Literal["function"]
    function: FunctionDef


@with_config(_OPEN)
class NamedToolChoice(TypedDict):
    type: Literal["function"]
    function: dict[str, str]


@with_config(_OPEN)
class ResponseFormatModel(TypedDict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: NotRequired[dict[str, Any] | None]


@with_config(_OPEN)
class StreamOptions(TypedDict):
    include_usage: NotRequired[bool | None]


@with_config(_OPEN)
class Sampling(TypedDict):
    """Fields Chat Completions and Completions share."""

    model: Annotated[str, Field(min_length=1)]
    stream: NotRequired[bool]
    stream_options: NotRequired[StreamOptions | None]
    max_tokens: NotRequired[Annotated[int, Field(ge=1)] | None]
    temperature: NotRequired[Annotated[float, Field(ge=0, le=2)] | None]
    top_p: NotRequired[Annotated[float, Field(ge=0, le=1)] | None]
    n: NotRequired[Annotated[int, Field(ge=1, le=128)] | None]
    stop: NotRequired[str | list[str] | None]
    presence_penalty: NotRequired[Annotated[float, Field(ge=-2, le=2)] | None]
    frequency_penalty: NotRequired[Annotated[float, Field(ge=-2, le=2)] | None]
    seed: NotRequired[int | None]
    user: NotRequired[str | None]


@with_config(_OPEN)
class ChatBody(Sampling):
    messages: Annotated[list[MessageModel], Field(min_length=1)]
    max_completion_tokens: NotRequired[Annotated[int, Field(ge=1)] | None]
    tools: NotRequired[list[ToolModel] | None]
    tool_choice: NotRequired[Literal["none", "auto", "required"] | NamedToolChoice | None]
    parallel_tool_calls: NotRequired[bool | None]
    response_format: NotRequired[ResponseFormatModel | None]
    metadata: NotRequired[dict[str, str] | None]


CHAT_BODY = TypeAdapter(ChatBody)


# --------------------------------------------------------------------------- inbound


def parse(raw: bytes) -> Request:
    """The canonical request for a raw body; a 400 names the field to fix."""
    return parse_request(load_json(raw))


def parse_request(body: dict[str, Any]) -> Request:
    """The canonical request for a Chat Completions body."""
    validate(CHAT_BODY, body)
    messages = [_message(m) for m in body["messages"]]
    tools = body.get("tools")
    tools = (  # a comprehension is a call of its own: none for a request without tools
        [
            Tool(
                t["function"]["name"],
                t["function"].get("description"),
                t["function"].get("parameters"),
            )
            for t in tools
        ]
        if tools
        else []
    )
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        choice = choice["function"].get("name")
    fmt = body.get("response_format")
    response_format = None
    if fmt is not None:
        schema = fmt.get("json_schema") or {}
        response_format = ResponseFormat(
            fmt["type"], schema.get("name"), schema.get("schema"), schema.get("strict")
        )
    stop = body.get("stop")
    # Positional, in the order of Request's fields: each keyword argument of a dataclass
    # costs about 450 instructions more (a test checks every field lands where it should).
    return Request(
        "chat",  # operation
        body["model"],
        NAME,  # source
        messages,
        None,  # prompt
        None,  # input
        tools,
        choice,  # tool_choice
        body.get("parallel_tool_calls"),
        response_format,
        body.get("max_completion_tokens") or body.get("max_tokens"),
        body.get("temperature"),
        body.get("top_p"),
        None,  # top_k
        [stop] if isinstance(stop, str) else list(stop or ()),
        body.get("seed"),
        bool(body.get("stream")),
        bool((body.get("stream_options") or {}).get("include_usage")),
        body.get("user"),
        body.get("metadata") or {},
        body,  # wire
    )


def _message(m: dict[str, Any]) -> Message:
    role = m["role"]
    content = m.get("content")
    if role == "developer":
        role = "system"
    elif role == "function":  # the deprecated function-calling role: a tool result by name
        return Message("tool", content_of(content), tool_call_id=m.get("name"), name=m.get("name"))
    calls = m.get("tool_calls")
    calls = (  # no comprehension (a call of its own) for a message without tool calls
        [ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls]
        if calls
        else []
    )
    if type(content) is not str:  # a string is its own content: no call for it
        content = content_of(content)
    return Message(role, content, calls, m.get("tool_call_id"), m.get("name"))


def content_of(content: Any) -> str | list[Part]:
    """Canonical content for an OpenAI ``content`` (string, part list or null)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[Part] = []
    for p in content:
        kind = p.get("type")
        if kind == "text":
            parts.append(Part("text", p["text"]))
        elif kind == "refusal":
            parts.append(Part("text", p.get("refusal") or ""))
        elif kind == "image_url":
            image = p["image_url"]
            parts.append(image_part(image.get("url", "") if isinstance(image, dict) else image))
        else:
            parts.append(Part("other", raw=p))
    return parts


def image_part(url: str) -> Part:
    """An image part for a URL; a ``data:...;base64,`` URL also carries its media type and data."""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        if header.endswith(";base64"):
            return Part("image", url=url, media_type=header[5:-7], data=data)
    return Part("image", url=url)


# --------------------------------------------------------------------------- outbound request


def encode_request(request: Request, model_id: str, cap: int | None) -> dict[str, Any]:
    """The body to send an OpenAI-compatible upstream for ``request``."""
    wire = request.wire
    if wire is not None and request.source == NAME:
        out = {**wire, "model": model_id}
        if cap is not None:
            key = "max_completion_tokens" if "max_completion_tokens" in wire else "max_tokens"
            out[key] = max_tokens(request.max_tokens, cap)
    else:
        out = _build(request, model_id, max_tokens(request.max_tokens, cap))
    if request.stream:
        out["stream"] = True
        out["stream_options"] = {**(out.get("stream_options") or {}), "include_usage": True}
    return out


def _build(request: Request, model_id: str, limit: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": model_id,
        "messages": [_wire_message(m) for m in request.messages],
    }
    if limit is not None:
        out["max_tokens"] = limit
    for key in ("temperature", "top_p", "seed", "user", "parallel_tool_calls"):
        value = getattr(request, key)
        if value is not None:
            out[key] = value
    if request.stop:
        out["stop"] = request.stop
    if request.logprobs is not None:
        out["logprobs"] = True
        out["top_logprobs"] = request.logprobs
    if request.tools:
        out["tools"] = [
            {
                "type": "function",
                "function": _drop_none(
                    {"name": t.name, "description": t.description, "parameters": t.parameters}
                ),
            }
            for t in request.tools
        ]
    choice = request.tool_choice
    if choice is not None:
        out["tool_choice"] = (
            choice
            if choice in ("auto", "none", "required")
            else {"type": "function", "function": {"name": choice}}
        )
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        out["response_format"] = (
            {
                "type": "json_schema",
                "json_schema": _drop_none(
                    {"name": fmt.name or "response", "schema": fmt.schema, "strict": fmt.strict}
                ),
            }
            if fmt.type == "json_schema" and fmt.schema is not None
            else {"type": "json_object"}
        )
    return out


def _wire_message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": wire_content(m.content)}
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
        if not out["content"]:
            out["content"] = None
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    if m.name and m.role != "tool":
        out["name"] = m.name
    return out


def wire_content(content: str | list[Part]) -> Any:
    """OpenAI ``content`` for canonical content."""
    if isinstance(content, str):
        return content
    out: list[dict[str, Any]] = []
    for p in content:
        if p.type == "text":
            out.append({"type": "text", "text": p.text})
        elif p.type == "image":
            url = p.url or f"data:{p.media_type};base64,{p.data}"
            out.append({"type": "image_url", "image_url": {"url": url}})
        elif p.raw is not None:
            out.append(p.raw)
    return out


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


# --------------------------------------------------------------------------- responses


@shape_checked
def parse_response(raw: bytes, upstream: str) -> Response:
    """The canonical answer for an upstream's ``chat.completion`` body."""
    data = answer_object(raw, upstream, "choices")
    choices = []
    for c in data["choices"]:
        message = c.get("message") or {}
        calls = [
            ToolCall(
                call.get("id") or "",
                (call.get("function") or {}).get("name") or "",
                (call.get("function") or {}).get("arguments") or "",
            )
            for call in message.get("tool_calls") or ()
        ]
        choices.append(
            Choice(c.get("index", 0), message.get("content"), calls, c.get("finish_reason"))
        )
    return Response(
        data.get("id") or "",
        data.get("model"),
        data.get("created") or int(time.time()),
        choices,
        usage_from(data),
        NAME,
        raw,
    )


def usage_from(data: dict[str, Any]) -> Usage | None:
    """The ``usage`` of an OpenAI response or chunk, if present and sane."""
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    return Usage(
        token_count(usage.get("prompt_tokens")), token_count(usage.get("completion_tokens"))
    )


def render_response(response: Response, request: Request) -> bytes:
    """The ``chat.completion`` body for the client."""
    if response.source == NAME and response.raw is not None:
        return response.raw
    choices = []
    for c in response.choices:
        message: dict[str, Any] = {"role": "assistant", "content": c.text}
        if c.tool_calls:
            message["tool_calls"] = [
                {
                    "id": t.id,
                    "type": "function",
                    "function": {"name": t.name, "arguments": t.arguments},
                }
                for t in c.tool_calls
            ]
        choices.append({"index": c.index, "message": message, "finish_reason": c.finish_reason})
    body: dict[str, Any] = {
        "id": response.id or f"chatcmpl-{time.time_ns():x}",
        "object": "chat.completion",
        "created": response.created,
        "model": response.model or request.model,
        "choices": choices,
    }
    if response.usage is not None:
        body["usage"] = usage_json(response.usage)
    return orjson.dumps(body)


def usage_json(usage: Usage) -> dict[str, int]:
    """The OpenAI ``usage`` object."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


# --------------------------------------------------------------------------- streams


# A batch of stream events with none of these is deltas only: a client that speaks this
# format too gets it forwarded unread. Literals, looked for with ``in``: a regex alternation
# of them tries a match at every quote of every event (about 8,000 instructions a batch).
STREAM_MARKS = (b'"usage"', b"[DONE]", b'"error"')
LAST_EVENT = "[DONE]"


def stream_decoder(upstream: str) -> Callable[[bytes, bytes], StreamEvent]:
    """A decoder for one upstream stream: ``decode(frame, data)`` → one canonical event."""
    return bound_decoder(decode_event, upstream)


@shape_checked
def decode_event(frame: bytes, data: bytes, upstream: str) -> StreamEvent:
    """The canonical event for one ``chat.completion.chunk`` (``data`` is its payload)."""
    if data == b"[DONE]":
        return StreamEvent(raw=frame, done=True)
    chunk = parse_event(data, upstream)
    get = chunk.get
    usage = usage_from(chunk) if get("usage") else None
    choices = get("choices")
    if not choices:
        return StreamEvent(
            0,
            None,
            None,
            None,
            None,
            usage,
            get("id"),
            get("model"),
            frame,
            False,
            usage is not None,
        )
    choice = choices[0]
    delta = choice.get("delta") or choice
    calls = delta.get("tool_calls")
    deltas = (
        [
            ToolCallDelta(
                c.get("index") or 0,
                c.get("id"),
                (c.get("function") or {}).get("name"),
                (c.get("function") or {}).get("arguments") or "",
            )
            for c in calls
        ]
        if calls
        else None
    )
    return StreamEvent(
        choice.get("index") or 0,
        delta.get("role"),
        delta.get("content") or delta.get("text") or delta.get("refusal"),
        deltas,
        choice.get("finish_reason"),
        usage,
        get("id"),
        get("model"),
        frame,
    )


class ChatStreamEncoder:
    """Canonical events as ``chat.completion.chunk`` frames."""

    def __init__(self, request: Request, trace_id: str) -> None:
        self.include_usage = request.include_usage
        self.model = request.model
        self.id = f"chatcmpl-{trace_id}"
        self.created = int(time.time())
        self._started = False

    def _frame(self, choices: list[Any], usage: Usage | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
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
        if event.model and not self._started:
            self.model = event.model
        delta: dict[str, Any] = {}
        if not self._started:
            delta["role"] = "assistant"
            self._started = True
        if event.text:
            delta["content"] = event.text
        if event.tool_calls:
            delta["tool_calls"] = [
                _drop_none(
                    {
                        "index": c.index,
                        "id": c.id,
                        "type": "function" if c.id else None,
                        "function": _drop_none({"name": c.name, "arguments": c.arguments}),
                    }
                )
                for c in event.tool_calls
            ]
        if not delta and event.finish_reason is None:
            return b""
        return self._frame(
            [{"index": event.index, "delta": delta, "finish_reason": event.finish_reason}]
        )

    def finish(self, usage: Usage | None) -> bytes:
        tail = self._frame([], usage) if self.include_usage and usage is not None else b""
        return tail + DONE

    def error(self, status: int, payload: bytes) -> bytes:
        return b"data: " + payload + b"\n\n" + DONE


def stream_encoder(request: Request, trace_id: str) -> ChatStreamEncoder:
    """The encoder for a client that asked for a chat stream."""
    return ChatStreamEncoder(request, trace_id)


def error_body(status: int, message: str, error_type: str, code: str | None, param: Any) -> bytes:
    """An OpenAI-format error body."""
    return orjson.dumps(
        {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    )
