"""OpenAI Responses, stateless: ``POST /v1/responses`` bodies (``input`` as a string or as
items, ``instructions``, function tools, ``text.format``), ``response`` objects and the
documented event stream (``response.created`` ... ``response.completed``).

Nothing is stored: ``store`` is answered as false and ``previous_response_id`` is a 400.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from crossroads.exceptions import InvalidRequestError
from crossroads.formats.base import json_text, load_json, validate
from crossroads.formats.openai_chat import error_body, image_part
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

NAME = "openai_responses"
__all__ = ["NAME", "error_body", "parse", "render_response", "stream_encoder"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class FunctionTool(_Open):
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class TextFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class TextConfig(_Open):
    format: TextFormat | None = None


class Item(_Open):
    type: Literal["message", "function_call", "function_call_output"] = "message"


class ResponsesBody(_Open):
    model: str = Field(min_length=1)
    input: str | list[Item]
    instructions: str | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stream: bool = False
    store: bool | None = None
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None


def parse(raw: bytes) -> Request:
    """The canonical request for a raw body; a 400 names the field to fix."""
    return parse_request(load_json(raw))


def parse_request(body: dict[str, Any]) -> Request:
    """The canonical request for a Responses body."""
    validate(ResponsesBody, body)
    if body.get("previous_response_id"):
        raise InvalidRequestError(
            "previous_response_id is not supported: this gateway stores no responses "
            "(store: false). Send the whole conversation in 'input'.",
            param="previous_response_id",
        )
    messages: list[Message] = []
    if body.get("instructions"):
        messages.append(Message("system", body["instructions"]))
    items = body["input"]
    if isinstance(items, str):
        messages.append(Message("user", items))
    else:
        for i, item in enumerate(items):
            _item(item, i, messages)
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        choice = choice.get("name") or "auto"
    fmt = ((body.get("text") or {}).get("format")) or None
    response_format = None
    if fmt is not None:
        response_format = ResponseFormat(
            fmt["type"], fmt.get("name"), fmt.get("schema"), fmt.get("strict")
        )
    return Request(
        operation="chat",
        model=body["model"],
        source=NAME,
        messages=messages,
        tools=[
            Tool(t["name"], t.get("description"), t.get("parameters"))
            for t in body.get("tools") or ()
        ],
        tool_choice=choice,
        parallel_tool_calls=body.get("parallel_tool_calls"),
        response_format=response_format,
        max_tokens=body.get("max_output_tokens"),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        stream=bool(body.get("stream")),
        include_usage=True,
        user=body.get("user"),
        metadata=body.get("metadata") or {},
        wire=body,
    )


def _item(item: dict[str, Any], i: int, messages: list[Message]) -> None:
    kind = item.get("type", "message")
    where = f"input[{i}]"
    if kind == "function_call":
        if not all(isinstance(item.get(k), str) for k in ("call_id", "name", "arguments")):
            raise InvalidRequestError(
                f"Invalid '{where}': a function_call needs call_id, name and arguments.",
                param=where,
            )
        call = ToolCall(item["call_id"], item["name"], item["arguments"])
        if messages and messages[-1].role == "assistant" and not messages[-1].content:
            messages[-1].tool_calls.append(call)
        else:
            messages.append(Message("assistant", "", [call]))
        return
    if kind == "function_call_output":
        if not isinstance(item.get("call_id"), str):
            raise InvalidRequestError(
                f"Invalid '{where}.call_id': a function_call_output needs it.",
                param=f"{where}.call_id",
            )
        output = item.get("output")
        messages.append(
            Message(
                "tool",
                output if isinstance(output, str) else json_text(output, f"{where}.output"),
                tool_call_id=item["call_id"],
            )
        )
        return
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise InvalidRequestError(
            f"Invalid '{where}.role': use user, assistant, system or developer.",
            param=f"{where}.role",
        )
    content = item.get("content")
    if isinstance(content, str):
        messages.append(Message("system" if role == "developer" else role, content))
        return
    if not isinstance(content, list):
        raise InvalidRequestError(
            f"Invalid '{where}.content': give a string or a list of parts.",
            param=f"{where}.content",
        )
    parts: list[Part] = []
    for j, p in enumerate(content):
        kind = p.get("type") if isinstance(p, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(p.get("text"), str):
            parts.append(Part("text", p["text"]))
        elif kind == "input_image" and isinstance(p.get("image_url"), str):
            parts.append(image_part(p["image_url"]))
        elif kind == "refusal":
            parts.append(Part("text", str(p.get("refusal") or "")))
        else:
            raise InvalidRequestError(
                f"Invalid '{where}.content[{j}]': unsupported part {kind!r}.",
                param=f"{where}.content[{j}]",
            )
    text_only = all(p.type == "text" for p in parts)
    messages.append(
        Message(
            "system" if role == "developer" else role,
            "".join(p.text for p in parts) if text_only else parts,
        )
    )


def _usage(usage: Usage | None) -> dict[str, Any]:
    usage = usage or Usage()
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def _envelope(
    rid: str,
    request: Request,
    status: str,
    output: list[Any],
    usage: Usage | None,
    created: int,
    model: str | None,
) -> dict[str, Any]:
    wire = request.wire or {}
    incomplete = status == "incomplete"
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": wire.get("instructions"),
        "max_output_tokens": request.max_tokens,
        "model": model or request.model,
        "output": output,
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": None,
        "store": False,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "text": wire.get("text") or {"format": {"type": "text"}},
        "tool_choice": wire.get("tool_choice", "auto"),
        "tools": wire.get("tools") or [],
        "truncation": "disabled",
        "metadata": request.metadata,
        "user": request.user,
        "usage": _usage(usage) if usage is not None else None,
    }


def render_response(response: Response, request: Request) -> bytes:
    """The ``response`` object for the client."""
    choice = response.choices[0] if response.choices else None
    output: list[dict[str, Any]] = []
    rid = f"resp_{response.id or time.time_ns()}"
    if choice is not None and choice.text:
        output.append(_message_item(f"msg_{rid[5:]}", choice.text))
    for call in choice.tool_calls if choice else ():
        output.append(_call_item(call.id, call.name, call.arguments))
    status = (
        "incomplete" if choice is not None and choice.finish_reason == "length" else "completed"
    )
    return orjson.dumps(
        _envelope(
            rid,
            request,
            status,
            output,
            response.usage or Usage(),
            response.created,
            response.model,
        )
    )


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _call_item(
    call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


class ResponsesStreamEncoder:
    """Canonical events as the Responses event stream, with ``sequence_number`` in order."""

    def __init__(self, request: Request, trace_id: str) -> None:
        self.request = request
        self.id = f"resp_{trace_id}"
        self.created = int(time.time())
        self.seq = 0
        self.items: list[dict[str, Any]] = []  # finished output items
        self.text: list[str] | None = None  # the open message item's text
        self.calls: dict[int, dict[str, Any]] = {}  # open function_call items by tool index
        self.length = False
        self.model: str | None = None

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        payload = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def _response(self, status: str, usage: Usage | None) -> dict[str, Any]:
        return _envelope(self.id, self.request, status, self.items, usage, self.created, self.model)

    def start(self) -> bytes:
        response = self._response("in_progress", None)
        return self._event("response.created", {"response": response}) + self._event(
            "response.in_progress", {"response": response}
        )

    def _close_text(self) -> bytes:
        if self.text is None:
            return b""
        text, self.text = "".join(self.text), None
        index = len(self.items)
        item = _message_item(f"msg_{self.id[5:]}_{index}", text)
        self.items.append(item)
        part = item["content"][0]
        common = {"item_id": item["id"], "output_index": index, "content_index": 0}
        return (
            self._event("response.output_text.done", {**common, "text": text, "logprobs": []})
            + self._event("response.content_part.done", {**common, "part": part})
            + self._event("response.output_item.done", {"output_index": index, "item": item})
        )

    def _close_calls(self) -> bytes:
        out = b""
        for call in self.calls.values():
            item = _call_item(call["call_id"], call["name"], "".join(call["args"]))
            out += self._event(
                "response.function_call_arguments.done",
                {
                    "item_id": item["id"],
                    "output_index": call["index"],
                    "arguments": item["arguments"],
                },
            )
            out += self._event(
                "response.output_item.done", {"output_index": call["index"], "item": item}
            )
            self.items.append(item)
        self.calls.clear()
        return out

    def encode(self, event: StreamEvent) -> bytes:
        out = b""
        if event.model and self.model is None:
            self.model = event.model
        if event.text:
            if self.text is None:
                out += self._close_calls()
                self.text = []
                index = len(self.items)
                item = _message_item(f"msg_{self.id[5:]}_{index}", "", "in_progress")
                item["content"] = []
                out += self._event(
                    "response.output_item.added", {"output_index": index, "item": item}
                )
                out += self._event(
                    "response.content_part.added",
                    {
                        "item_id": item["id"],
                        "output_index": index,
                        "content_index": 0,
                        "part": {"type": "output_text", "text": "", "annotations": []},
                    },
                )
            self.text.append(event.text)
            out += self._event(
                "response.output_text.delta",
                {
                    "item_id": f"msg_{self.id[5:]}_{len(self.items)}",
                    "output_index": len(self.items),
                    "content_index": 0,
                    "delta": event.text,
                    "logprobs": [],
                },
            )
        for delta in event.tool_calls or ():
            call = self.calls.get(delta.index)
            if call is None:
                out += self._close_text()
                call_id = delta.id or f"call_{len(self.items) + len(self.calls)}"
                call = {
                    "call_id": call_id,
                    "name": delta.name or "",
                    "args": [],
                    "index": len(self.items) + len(self.calls),
                }
                self.calls[delta.index] = call
                item = _call_item(call_id, call["name"], "", "in_progress")
                out += self._event(
                    "response.output_item.added", {"output_index": call["index"], "item": item}
                )
            if delta.arguments:
                call["args"].append(delta.arguments)
                out += self._event(
                    "response.function_call_arguments.delta",
                    {
                        "item_id": f"fc_{call['call_id']}",
                        "output_index": call["index"],
                        "delta": delta.arguments,
                    },
                )
        if event.finish_reason == "length":
            self.length = True
        return out

    def finish(self, usage: Usage | None) -> bytes:
        out = self._close_text() + self._close_calls()
        status = "incomplete" if self.length else "completed"
        kind = "response.incomplete" if self.length else "response.completed"
        return out + self._event(kind, {"response": self._response(status, usage or Usage())})

    def error(self, status: int, payload: bytes) -> bytes:
        message = orjson.loads(payload)["error"]["message"]
        response = self._response("failed", None)
        response["error"] = {"code": "server_error", "message": message}
        return self._event(
            "error", {"code": str(status), "message": message, "param": None}
        ) + self._event("response.failed", {"response": response})


def stream_encoder(request: Request, trace_id: str) -> ResponsesStreamEncoder:
    """The encoder for a client that asked for a Responses stream."""
    return ResponsesStreamEncoder(request, trace_id)
