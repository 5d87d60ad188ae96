"""Anthropic Messages: ``POST /v1/messages`` bodies, ``message`` answers and the Messages
stream (``message_start`` ... ``message_stop``), to and from the canonical types."""

from __future__ import annotations

import time
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from crossroads.formats.base import load_json, validate
from crossroads.formats.openai_chat import image_part
from crossroads.types import (
    Message,
    Part,
    Request,
    Response,
    ResponseFormat,
    StreamEvent,
    Tool,
    ToolCall,
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
            else "\n".join(b.get("text", "") for b in system if b.get("type") == "text")
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
                    block["id"], block["name"], orjson.dumps(block.get("input") or {}).decode()
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
                    r.get("text", "")
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
    """The Anthropic ``message`` body for the client."""
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


__all__ = ["NAME", "ResponseFormat", "error_body", "parse", "render_response", "stream_encoder"]
