"""OpenAI chat bodies to Anthropic Messages requests, and Anthropic answers back to OpenAI.

Pure functions, no I/O, so every mapping is unit-tested without a socket (the stream
state machine is in :mod:`crossroads.dispatch.anthropic_stream`). What does not map:

* ``response_format`` has no Anthropic equivalent: ``json_object`` (and ``json_schema``,
  with its schema) becomes a system instruction asking for JSON only. It is a request to
  the model, not a guarantee.
* ``n``, ``seed``, ``logprobs``, ``presence_penalty``, ``frequency_penalty``, ``logit_bias``
  and OpenAI's ``metadata`` are dropped; ``temperature`` passes through unchanged (Anthropic
  accepts 0..1 and says so in its 400 if a client sends more).
* Content parts other than text and images (audio, files) are refused with a 400.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import orjson

from crossroads.config import AnthropicUpstreamConfig
from crossroads.exceptions import UpstreamProtocolError, UpstreamStatusError
from crossroads.types import Usage

Block = dict[str, Any]
Turn = dict[str, Any]

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


def unsupported(upstream: str, message: str) -> UpstreamStatusError:
    """A 400 for a request this Anthropic upstream cannot express; not worth retrying."""
    err = UpstreamStatusError(
        f"upstream {upstream!r} (Anthropic): {message}",
        upstream=upstream,
        public=f"The request cannot be sent to this model: {message}",
    )
    err.status = 400
    err.retryable = False
    return err


# --------------------------------------------------------------------------- request


def to_anthropic(body: dict[str, Any], config: AnthropicUpstreamConfig) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat body, e.g. ``{"model": "m", "messages":
    [{"role": "user", "content": "hi"}]}`` → ``{"model": "m", "max_tokens": 4096, "messages":
    [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}``. Raises a 400
    :class:`UpstreamStatusError` for what Anthropic cannot express."""
    name = config.name
    system: list[str] = []
    turns: list[Turn] = []
    for message in body.get("messages") or []:
        role = message.get("role")
        if role in ("system", "developer"):
            text = _text_of(message.get("content"), name)
            if text:
                system.append(text)
        else:
            turns.append(_turn(message, name))
    instruction = _format_instruction(body.get("response_format"))
    if instruction:
        system.append(instruction)
    out: dict[str, Any] = {
        "model": body["model"],
        "max_tokens": int(
            body.get("max_completion_tokens") or body.get("max_tokens") or config.default_max_tokens
        ),
        "messages": merge_turns(turns),
    }
    if system:
        out["system"] = "\n\n".join(system)
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("stream"):
        out["stream"] = True
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    if body.get("tools"):
        out["tools"] = [tool_to_anthropic(tool) for tool in body["tools"]]
        choice = tool_choice_to_anthropic(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    return out


def merge_turns(turns: Iterable[Turn]) -> list[Turn]:
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


def _turn(message: dict[str, Any], upstream: str) -> Turn:
    role = message.get("role")
    if role == "tool":
        result: Block = {
            "type": "tool_result",
            "tool_use_id": message.get("tool_call_id"),
            "content": _text_of(message.get("content"), upstream),
        }
        return {"role": "user", "content": [result]}
    if role not in ("user", "assistant"):
        raise unsupported(upstream, f"messages with role {role!r} cannot be sent; use 'tool'")
    blocks = content_blocks(message.get("content"), upstream)
    if role == "assistant":
        blocks += [
            tool_call_to_anthropic(call, upstream) for call in message.get("tool_calls") or []
        ]
    return {"role": role, "content": blocks}


def content_blocks(content: Any, upstream: str) -> list[Block]:
    """Anthropic content blocks for an OpenAI ``content`` (a string or a list of parts)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[Block] = []
    for part in content:
        kind = part.get("type")
        if kind in ("text", "refusal"):
            text = part.get(kind) or ""
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            blocks.append(image_block(part["image_url"], upstream))
        else:
            raise unsupported(upstream, f"content parts of type {kind!r} are not supported")
    return blocks


def image_block(image_url: Any, upstream: str) -> Block:
    """An image block: ``data:`` URLs become base64 sources, others URL sources."""
    url = image_url.get("url", "") if isinstance(image_url, dict) else str(image_url)
    if not url.startswith("data:"):
        return {"type": "image", "source": {"type": "url", "url": url}}
    header, _, data = url.partition(",")
    if not header.endswith(";base64") or not data:
        raise unsupported(
            upstream, f"image data URLs must be base64 ('data:image/png;base64,...'): {url[:40]!r}"
        )
    media_type = header[len("data:") : -len(";base64")]
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def tool_call_to_anthropic(call: dict[str, Any], upstream: str) -> Block:
    """A ``tool_use`` block for an assistant's OpenAI ``tool_calls`` entry."""
    function = call.get("function") or {}
    arguments = function.get("arguments") or "{}"
    try:
        tool_input = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        raise unsupported(
            upstream,
            f"tool call {call.get('id')!r} has arguments that are not JSON: {arguments[:100]!r}",
        ) from None
    return {
        "type": "tool_use",
        "id": call.get("id"),
        "name": function.get("name"),
        "input": tool_input,
    }


def tool_to_anthropic(tool: dict[str, Any]) -> Block:
    """An Anthropic tool definition for an OpenAI function tool."""
    function = tool.get("function") or {}
    out: Block = {
        "name": function["name"],
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    return out


def tool_choice_to_anthropic(choice: Any, parallel: bool | None = None) -> Block | None:
    """auto → auto, required → any, none → none, a named function → that tool."""
    if isinstance(choice, str):
        out: Block = {"type": TOOL_CHOICES.get(choice, "auto")}
    elif isinstance(choice, dict):
        out = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    elif parallel is False:
        out = {"type": "auto"}
    else:
        return None
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _text_of(content: Any, upstream: str) -> str:
    """The text of a content that may only hold text (system prompts, tool results)."""
    blocks = content_blocks(content, upstream)
    if any(block["type"] != "text" for block in blocks):
        raise unsupported(upstream, "system and tool messages may only contain text")
    return "\n".join(block["text"] for block in blocks)


def _format_instruction(response_format: Any) -> str | None:
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        return JSON_ONLY
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            return f"{JSON_ONLY} It must match this JSON schema: {orjson.dumps(schema).decode()}"
        return JSON_ONLY
    return None


# --------------------------------------------------------------------------- response


def usage_of(usage: Any) -> Usage:
    """OpenAI-style usage from Anthropic's; cached input counts as prompt tokens."""
    usage = usage if isinstance(usage, dict) else {}
    prompt = sum(
        int(usage.get(key) or 0)
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return Usage(prompt_tokens=prompt, completion_tokens=int(usage.get("output_tokens") or 0))


def usage_json(usage: Usage) -> dict[str, int]:
    """The OpenAI ``usage`` object."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def finish_reason(stop_reason: str | None) -> str | None:
    """OpenAI's ``finish_reason`` for Anthropic's ``stop_reason``."""
    return FINISH_REASONS.get(stop_reason, "stop") if stop_reason else None


def to_openai(data: Any, upstream: str) -> tuple[dict[str, Any], Usage]:
    """The OpenAI ``chat.completion`` for an Anthropic message, and its usage."""
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise UpstreamProtocolError(
            f"upstream {upstream!r} answered JSON without a 'content' list: "
            f"{orjson.dumps(data)[:200]!r}",
            upstream=upstream,
        )
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in data["content"]:
        if block.get("type") == "text":
            texts.append(block.get("text") or "")
        elif block.get("type") == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    usage = usage_of(data.get("usage"))
    completion = {
        "id": data.get("id") or f"msg_{time.time_ns():x}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.get("model"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(data.get("stop_reason")),
            }
        ],
        "usage": usage_json(usage),
    }
    return completion, usage
