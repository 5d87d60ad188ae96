"""What a request says: its text, its length in tokens, and the capabilities it needs."""

from __future__ import annotations

from typing import Any

from crossroads.tokens import TOKENS_PER_MESSAGE, count_tokens
from crossroads.types import Caller, Endpoint, RoutingRequest


def content_text(content: Any) -> str:
    """The text of a message ``content``: a string, or the text parts of a part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _has_image(messages: list[dict[str, Any]]) -> bool:
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") in ("image_url", "input_image"):
                    return True
    return False


def needed_capabilities(body: dict[str, Any], messages: list[dict[str, Any]]) -> frozenset[str]:
    """Capabilities a request uses: ``tools``, ``vision``, ``json``."""
    needs = set()
    if body.get("tools") or body.get("functions"):
        needs.add("tools")
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        needs.add("json")
    if _has_image(messages):
        needs.add("vision")
    return frozenset(needs)


def routing_request(
    body: dict[str, Any], endpoint: Endpoint = "chat", caller: Caller | None = None
) -> RoutingRequest:
    """Build what signals see from a validated request body."""
    if endpoint == "chat":
        messages = body.get("messages") or []
        texts = [content_text(m.get("content")) for m in messages]
        text = "\n".join(t for t in texts if t)
        last_user = next(
            (
                t
                for m, t in zip(reversed(messages), reversed(texts), strict=True)
                if m.get("role") == "user"
            ),
            "",
        )
        prompt_tokens = count_tokens(text) + TOKENS_PER_MESSAGE * len(messages)
    else:
        prompt = body.get("prompt", "")
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
            text, prompt_tokens = "", len(prompt)  # token ids
        else:
            text = (
                prompt
                if isinstance(prompt, str)
                else "\n".join(p for p in prompt if isinstance(p, str))
            )
            prompt_tokens = count_tokens(text)
        messages, last_user = [], text
    max_out = body.get("max_completion_tokens") or body.get("max_tokens")
    return RoutingRequest(
        body=body,
        endpoint=endpoint,
        caller=caller or Caller(user=body.get("user")),
        text=text,
        last_user_text=last_user,
        prompt_tokens=prompt_tokens,
        max_output_tokens=max_out if isinstance(max_out, int) else None,
        needs=needed_capabilities(body, messages),
    )
