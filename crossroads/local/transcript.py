"""Chat on a base model: messages rendered as a plain transcript the model can continue.

Gemma 3 270M is a base model: its GGUF carries no chat template, llama.cpp falls back to
the Llama-2 ``[INST]`` format, and the model answers with markup. A transcript such as
``User: ...\\nAssistant:`` is text a base model has seen; stopping at the next ``User:``
turns its continuation into an answer. The model stays a completion model: route chat to
it only as a fallback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

TRANSCRIPT_FORMAT = "crossroads-transcript"
DEFAULT_PREAMBLE = "A conversation between a user and a helpful assistant who answers briefly."
STOPS = ["\nUser:", "\nUSER:", "\n\n\n"]
_SPEAKERS = {"user": "User", "assistant": "Assistant", "tool": "Tool", "function": "Tool"}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "\n".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "text"
        )
    return ""


def transcript_prompt(messages: Iterable[Mapping[str, Any]]) -> tuple[str, list[str]]:
    """The transcript prompt and stop strings for chat ``messages``.

    >>> transcript_prompt([{"role": "user", "content": "Hi"}])[0].splitlines()[-2:]
    ['User: Hi', 'Assistant:']
    """
    preamble: list[str] = []
    turns: list[str] = []
    for message in messages:
        role = str(message.get("role", "user"))
        text = _text(message.get("content")).strip()
        if role in ("system", "developer"):
            preamble.append(text)
        elif text:
            turns.append(f"{_SPEAKERS.get(role, 'User')}: {text}")
    header = "\n".join(p for p in preamble if p) or DEFAULT_PREAMBLE
    return "\n".join([header, "", *turns, "Assistant:"]), list(STOPS)


def register_with_llama_cpp() -> None:
    """Register :data:`TRANSCRIPT_FORMAT` as a llama.cpp chat format (imports llama_cpp)."""
    from llama_cpp import llama_chat_format as formats

    def format_transcript(messages: Any, **kwargs: Any) -> Any:
        prompt, stops = transcript_prompt(messages)
        return formats.ChatFormatterResponse(prompt=prompt, stop=stops)

    formats.register_chat_format(TRANSCRIPT_FORMAT)(format_transcript)
