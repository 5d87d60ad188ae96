"""What a request says: its text, its length in tokens, and the capabilities it needs."""

from __future__ import annotations

from typing import Any

from crossroads.tokens import TOKENS_PER_MESSAGE, count_tokens
from crossroads.types import Caller, Message, Operation, Part, Request, RoutingRequest


def content_text(content: str | list[Part]) -> str:
    """The text of a message's content: a string, or its text parts."""
    if isinstance(content, str):
        return content
    return "\n".join(p.text for p in content if p.type == "text")


def needed_capabilities(request: Request) -> frozenset[str]:
    """Capabilities a request uses: ``tools``, ``vision``, ``json``."""
    needs = set()
    if request.tools:
        needs.add("tools")
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        needs.add("json")
    for m in request.messages:
        if not isinstance(m.content, str) and any(p.type == "image" for p in m.content):
            needs.add("vision")
            break
    return frozenset(needs)


def routing_request(
    request: Request | dict[str, Any], endpoint: Operation = "chat", caller: Caller | None = None
) -> RoutingRequest:
    """Build what signals see from a canonical request (or, for convenience in scripts and
    tests, from a valid OpenAI chat or completions body)."""
    if isinstance(request, dict):
        request = _from_openai(request, endpoint)
    if request.operation == "chat":
        messages = request.messages
        texts = [m.content if type(m.content) is str else content_text(m.content) for m in messages]
        text = "\n".join(filter(None, texts))  # the non-empty ones
        last_user = ""
        for i in range(len(messages) - 1, -1, -1):  # no generator: it costs more than the loop
            if messages[i].role == "user":
                last_user = texts[i]
                break
        prompt_tokens = count_tokens(text) + TOKENS_PER_MESSAGE * len(messages)
    else:
        prompt = request.prompt if request.operation == "completions" else request.input
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], int | list):
            text, prompt_tokens = "", len(prompt)  # token ids
        else:
            text = (
                prompt
                if isinstance(prompt, str)
                else "\n".join(p for p in prompt or () if isinstance(p, str))
            )
            prompt_tokens = count_tokens(text)
        last_user = text
    return RoutingRequest(  # positional, in field order: keywords cost more
        request,
        request.operation,
        caller or Caller(user=request.user),
        text,
        last_user,
        prompt_tokens,
        request.max_tokens,  # max_output_tokens
        needed_capabilities(request),
    )


def _from_openai(body: dict[str, Any], endpoint: Operation) -> Request:
    from crossroads.formats import openai_chat

    if endpoint == "completions":
        return Request(
            "completions",
            body.get("model", ""),
            "openai_completions",
            prompt=body.get("prompt", ""),
            user=body.get("user"),
            max_tokens=body.get("max_tokens"),
            wire=body,
        )
    messages = [
        Message(
            m.get("role", "user") if m.get("role") != "developer" else "system",
            openai_chat.content_of(m.get("content")),
        )
        for m in body.get("messages") or ()
    ]
    fmt = body.get("response_format")
    from crossroads.types import ResponseFormat, Tool

    return Request(
        "chat",
        body.get("model", ""),
        "openai_chat",
        messages=messages,
        tools=[Tool((t.get("function") or {}).get("name", "")) for t in body.get("tools") or ()]
        + ([Tool("function")] if body.get("functions") else []),
        response_format=ResponseFormat(fmt["type"])
        if isinstance(fmt, dict) and fmt.get("type")
        else None,
        max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
        user=body.get("user"),
        wire=body,
    )
