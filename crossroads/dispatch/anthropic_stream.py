"""Anthropic's stream events to OpenAI ``chat.completion.chunk`` frames: a small state machine,
fed one decoded event at a time, with no I/O."""

from __future__ import annotations

import time
from typing import Any

import orjson

from crossroads.dispatch.anthropic_translate import finish_reason, usage_json, usage_of
from crossroads.dispatch.sse import DONE
from crossroads.exceptions import UpstreamProtocolError


class StreamTranslator:
    """Turns Anthropic stream events into OpenAI ``chat.completion.chunk`` SSE frames.

    ``feed(event)`` returns the frames for one event (often none); after ``message_stop``
    the last frames are the usage chunk (empty ``choices``) and ``[DONE]``. ``finished``
    tells whether ``message_stop`` arrived.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.id = ""
        self.model: str | None = None
        self.created = int(time.time())
        self.usage: dict[str, Any] = {}
        self.finished = False
        self._tool_index: dict[int, int] = {}  # Anthropic block index → OpenAI tool index

    def feed(self, event: dict[str, Any]) -> list[bytes]:
        """The frames for one decoded event; raises on an ``error`` event."""
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = message.get("id") or self.id
            self.model = message.get("model") or self.model
            self.usage.update(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_delta":
            return self._block_delta(event)
        if kind == "message_delta":
            self.usage.update(event.get("usage") or {})
            reason = finish_reason((event.get("delta") or {}).get("stop_reason"))
            return [self._chunk({}, reason or "stop")]
        if kind == "message_stop":
            self.finished = True
            usage = usage_json(usage_of(self.usage))
            return [self._frame({**self._base(), "choices": [], "usage": usage}), DONE]
        if kind == "error":
            error = event.get("error") or {}
            raise UpstreamProtocolError(
                f"upstream {self.upstream!r} sent an error mid-stream "
                f"({error.get('type', 'error')}): {error.get('message', '')}",
                upstream=self.upstream,
                status=503 if error.get("type") == "overloaded_error" else None,
            )
        return []  # ping, content_block_stop, and event types added later

    def _block_start(self, event: dict[str, Any]) -> list[bytes]:
        block = event.get("content_block") or {}
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") != "tool_use":
            return []
        index = self._tool_index.setdefault(event.get("index", 0), len(self._tool_index))
        call = {
            "index": index,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": ""},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, event: dict[str, Any]) -> list[bytes]:
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta":
            return [self._chunk({"content": delta.get("text", "")})]
        if delta.get("type") == "input_json_delta":
            index = self._tool_index.get(event.get("index", 0))
            fragment = delta.get("partial_json", "")
            if index is None or not fragment:
                return []
            call = {"index": index, "function": {"arguments": fragment}}
            return [self._chunk({"tool_calls": [call]})]
        return []  # thinking and signature deltas have no OpenAI equivalent

    def _base(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }

    def _chunk(self, delta: dict[str, Any], reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": reason}
        return self._frame({**self._base(), "choices": [choice]})

    @staticmethod
    def _frame(data: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(data) + b"\n\n"
