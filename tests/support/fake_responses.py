"""OpenAI-shaped bodies the fake upstream answers with: deterministic, derived from the request.

The reply to a chat request is ``"echo: <last user text>"``, so a test can tell which
request got which answer. A forced tool choice yields one tool call whose arguments are
built from the tool's JSON schema; ``response_format`` json yields a JSON object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

ECHO_PREFIX = "echo: "


@dataclass(slots=True)
class Reply:
    """What the fake model "generated" for one request."""

    text: str | None
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


def count_tokens(text: str) -> int:
    """A cheap deterministic token estimate: whitespace-separated words, at least 1."""
    return max(1, len(text.split()))


def message_text(content: Any) -> str:
    """The text of a message ``content``: a string or a list of parts with ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last ``user`` message (``""`` if there is none)."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def value_for_schema(schema: Any, text: str) -> Any:
    """A deterministic value matching a (simple) JSON schema; strings get ``text``."""
    if not isinstance(schema, dict):
        return text
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: value_for_schema(sub, text) for name, sub in props.items()}
    if kind == "array":
        return [value_for_schema(schema.get("items", {"type": "string"}), text)]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return text


def forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool the request forces (named ``tool_choice`` or ``"required"``), if any."""
    tools = body.get("tools")
    if not tools or not isinstance(tools, list):
        return None
    choice = body.get("tool_choice")
    functions: list[dict[str, Any]] = [
        t["function"] for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    if choice == "required":
        return functions[0] if functions else {}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return next((f for f in functions if f.get("name") == name), None)
    return None


def json_content(body: dict[str, Any], text: str) -> str | None:
    """JSON reply text when ``response_format`` asks for json, else ``None``."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_object":
        return orjson.dumps({"echo": text}).decode()
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
        return orjson.dumps(value_for_schema(schema, text)).decode()
    return None


def limit_words(text: str, max_tokens: Any) -> tuple[str, bool]:
    """Cut ``text`` to ``max_tokens`` words; returns the text and whether it was cut."""
    if not isinstance(max_tokens, int) or max_tokens <= 0:
        return text, False
    words = text.split(" ")
    if len(words) <= max_tokens:
        return text, False
    return " ".join(words[:max_tokens]), True


def chat_reply(body: dict[str, Any], call_id: str, fixed_reply: str | None = None) -> Reply:
    """What the fake model answers to a chat request ``body``."""
    messages = body.get("messages") or []
    prompt_tokens = sum(
        count_tokens(message_text(m.get("content"))) for m in messages if isinstance(m, dict)
    )
    user_text = last_user_text(messages)
    tool = forced_tool(body)
    if tool is not None:
        arguments = value_for_schema(tool.get("parameters") or {"type": "object"}, user_text)
        call = {
            "id": call_id,
            "type": "function",
            "function": {
                "name": tool.get("name", "tool"),
                "arguments": orjson.dumps(arguments).decode(),
            },
        }
        return Reply(None, [call], "tool_calls", prompt_tokens, count_tokens(str(arguments)))
    text = json_content(body, user_text)
    if text is None:
        text = fixed_reply if fixed_reply is not None else ECHO_PREFIX + user_text
        text, cut = limit_words(text, body.get("max_completion_tokens") or body.get("max_tokens"))
    else:
        cut = False
    return Reply(text, None, "length" if cut else "stop", prompt_tokens, count_tokens(text))


def completion_reply(body: dict[str, Any], fixed_reply: str | None = None) -> Reply:
    """What the fake model answers to a legacy ``/v1/completions`` request."""
    prompt = body.get("prompt", "")
    if isinstance(prompt, list):
        prompt = " ".join(p for p in prompt if isinstance(p, str))
    prompt = str(prompt)
    text = fixed_reply if fixed_reply is not None else ECHO_PREFIX + prompt
    text, cut = limit_words(text, body.get("max_tokens"))
    return Reply(text, None, "length" if cut else "stop", count_tokens(prompt), count_tokens(text))


def usage(reply: Reply) -> dict[str, int]:
    """The ``usage`` object of a reply."""
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def scripted(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The script for ``model`` in ``metadata.script`` (a JSON object text, by model id),
    or ``{}``. A script may set ``reply`` (the text, whatever the request asks),
    ``tool_arguments`` (a forced tool call's arguments text), ``finish`` (the finish
    reason), ``logprob`` (every token's logprob when logprobs are asked for; default -0.05),
    ``first_top`` (the first token's top alternatives' logprobs), ``delay`` (seconds before
    answering) and ``fault`` (a fault name, for this model only)."""
    metadata = body.get("metadata")
    raw = metadata.get("script") if isinstance(metadata, dict) else None
    if not raw:
        return {}
    scripts = orjson.loads(raw)
    found = scripts.get(model) if isinstance(scripts, dict) else None
    return found if isinstance(found, dict) else {}


def apply_script(reply: Reply, body: dict[str, Any], script: dict[str, Any]) -> Reply:
    """``reply`` as ``script`` rewrites it (see :func:`scripted`)."""
    if "reply" in script and not reply.tool_calls:
        reply.text = str(script["reply"])
        reply.text, cut = limit_words(
            reply.text, body.get("max_completion_tokens") or body.get("max_tokens")
        )
        reply.finish_reason = "length" if cut else "stop"
        reply.completion_tokens = count_tokens(reply.text)
    if "tool_arguments" in script and reply.tool_calls:
        reply.tool_calls[0]["function"]["arguments"] = str(script["tool_arguments"])
    if "finish" in script:
        reply.finish_reason = str(script["finish"])
    return reply


def logprobs_of(
    reply: Reply, body: dict[str, Any], script: dict[str, Any]
) -> dict[str, Any] | None:
    """OpenAI chat ``logprobs`` for a reply when the request asks for them: one token per
    word, each at the script's ``logprob``."""
    if not body.get("logprobs"):
        return None
    words = (reply.text or "").split(" ") if reply.text else []
    value = float(script.get("logprob", -0.05))
    top_n = int(body.get("top_logprobs") or 0)
    first_top = script.get("first_top")
    content = []
    for i, word in enumerate(words):
        if i == 0 and first_top is not None:
            tops = [
                {"token": f"t{j}", "logprob": float(v), "bytes": None}
                for j, v in enumerate(first_top)
            ]
        else:
            tops = [{"token": word, "logprob": value, "bytes": None}][:top_n]
        content.append(
            {"token": word, "logprob": value, "bytes": None, "top_logprobs": tops[:top_n]}
        )
    return {"content": content, "refusal": None}


def chat_completion(
    reply: Reply,
    rid: str,
    model: str,
    created: int,
    fingerprint: str,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    return {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": fingerprint,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": logprobs,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": usage(reply),
    }


def text_completion(
    reply: Reply, rid: str, model: str, created: int, fingerprint: str
) -> dict[str, Any]:
    """A legacy ``text_completion`` object."""
    return {
        "id": rid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": fingerprint,
        "choices": [
            {"index": 0, "text": reply.text, "logprobs": None, "finish_reason": reply.finish_reason}
        ],
        "usage": usage(reply),
    }


def split_text(text: str, parts: int) -> list[str]:
    """Split ``text`` into ``parts`` consecutive pieces (some empty if ``text`` is short)."""
    parts = max(1, parts)
    size, extra = divmod(len(text), parts)
    pieces, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def chat_chunks(
    reply: Reply,
    rid: str,
    model: str,
    created: int,
    fingerprint: str,
    chunks: int,
    include_usage: bool,
    logprobs: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` events of a streamed reply, in order (without ``[DONE]``).

    Role delta first, then ``chunks`` content (or tool-argument) deltas, then the
    ``finish_reason`` chunk, then a usage chunk with empty ``choices`` if asked. Logprobs,
    when asked for, ride on the first content delta.
    """

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": fingerprint,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    events = [chunk({"role": "assistant", "content": "" if reply.text is not None else None})]
    if reply.tool_calls:
        call = reply.tool_calls[0]
        head = {"index": 0, "id": call["id"], "type": "function"}
        head["function"] = {"name": call["function"]["name"], "arguments": ""}
        events.append(chunk({"tool_calls": [head]}))
        for piece in split_text(call["function"]["arguments"], chunks):
            events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    else:
        for piece in split_text(reply.text or "", chunks):
            events.append(chunk({"content": piece}))
        if logprobs is not None and len(events) > 1:
            events[1]["choices"][0]["logprobs"] = logprobs
    events.append(chunk({}, reply.finish_reason))
    if include_usage:
        last = chunk({})
        last["choices"] = []
        last["usage"] = usage(reply)
        events.append(last)
    return events


def completion_chunks(
    reply: Reply,
    rid: str,
    model: str,
    created: int,
    fingerprint: str,
    chunks: int,
    include_usage: bool,
) -> list[dict[str, Any]]:
    """The streamed events of a legacy completion (``text_completion`` objects)."""

    def chunk(text: str, finish: str | None = None) -> dict[str, Any]:
        return {
            "id": rid,
            "object": "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": fingerprint,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
        }

    events = [chunk(piece) for piece in split_text(reply.text or "", chunks)]
    events.append(chunk("", reply.finish_reason))
    if include_usage:
        last = chunk("")
        last["choices"] = []
        last["usage"] = usage(reply)
        events.append(last)
    return events


def error_body(message: str, error_type: str, code: str | None = None) -> bytes:
    """An OpenAI-style error body."""
    return orjson.dumps(
        {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    )
