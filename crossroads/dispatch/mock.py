"""An in-memory upstream: the whole upstream protocol without a socket, for unit tests,
dry runs of a config (``kind: mock``) and as the smallest example of an upstream plugin."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from crossroads.dispatch.base import Completion, Upstream
from crossroads.exceptions import UpstreamStatusError
from crossroads.tokens import count_tokens
from crossroads.types import Operation, Usage


class MockUpstream(Upstream):
    """Answers every chat or completions call with the configured ``reply`` (``{last}`` is
    the last user message or the prompt), in OpenAI's shapes; ``calls`` records the bodies."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.name: str = config.name
        self.calls: list[dict[str, Any]] = []

    def _answer(self, operation: Operation, body: dict[str, Any]) -> tuple[str, Usage]:
        if operation == "embeddings":
            raise UpstreamStatusError(
                f"upstream {self.name!r} (mock) has no embeddings", upstream=self.name, status=400
            )
        self.calls.append(body)
        if operation == "chat":
            messages = body.get("messages") or []
            last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
            content = last.get("content")
            text = (
                content
                if isinstance(content, str)
                else " ".join(p.get("text", "") for p in content or () if isinstance(p, dict))
            )
        else:
            prompt = body.get("prompt")
            text = prompt if isinstance(prompt, str) else ""
        reply = self.config.reply.replace("{last}", text)
        return reply, Usage(count_tokens(text) + 1, count_tokens(reply))

    async def complete(self, operation: Operation, body: dict[str, Any]) -> Completion:
        reply, usage = self._answer(operation, body)
        choice: dict[str, Any] = (
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply},
                "finish_reason": "stop",
            }
            if operation == "chat"
            else {"index": 0, "text": reply, "finish_reason": "stop"}
        )
        data = {
            "id": f"mock-{time.time_ns():x}",
            "object": "chat.completion" if operation == "chat" else "text_completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [choice],
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            },
        }
        return Completion(orjson.dumps(data), usage)

    async def stream(self, operation: Operation, body: dict[str, Any]) -> AsyncIterator[bytes]:
        reply, usage = self._answer(operation, body)
        n = self.config.chunks
        size = max(1, -(-len(reply) // n))
        base = {
            "id": f"mock-{time.time_ns():x}",
            "created": int(time.time()),
            "model": body.get("model"),
            "object": "chat.completion.chunk" if operation == "chat" else "text_completion",
        }

        def frame(choices: list[Any], **extra: Any) -> bytes:
            return b"data: " + orjson.dumps({**base, "choices": choices, **extra}) + b"\n\n"

        for i in range(0, len(reply), size):
            piece = reply[i : i + size]
            choice = (
                {"index": 0, "delta": {"content": piece}}
                if operation == "chat"
                else {"index": 0, "text": piece}
            )
            yield frame([{**choice, "finish_reason": None}])
        end = {"index": 0, "delta": {}} if operation == "chat" else {"index": 0, "text": ""}
        yield (
            frame([{**end, "finish_reason": "stop"}])
            + frame(
                [],
                usage={
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                },
            )
            + b"data: [DONE]\n\n"
        )
