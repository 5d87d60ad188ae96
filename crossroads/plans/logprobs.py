"""Token logprobs in OpenAI's answers and streams: read them, and take out the ones a plan
asked for when the client did not.

Chat puts them at ``choices[0].logprobs.content`` (``[{token, logprob, top_logprobs}]``),
legacy completions at ``choices[0].logprobs`` (``{tokens, token_logprobs, top_logprobs}``).
Other formats (Anthropic) have none: the readers return ``None``.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from crossroads.dispatch.sse import event_data, split_events

OPENAI = ("openai_chat", "openai_completions")


class Logprobs:
    """Token logprobs collected from one answer: ``tokens`` the chosen tokens' logprobs,
    ``first_top`` the logprobs of the first token's top alternatives."""

    __slots__ = ("first_top", "tokens")

    def __init__(self) -> None:
        self.tokens: list[float] = []
        self.first_top: list[float] | None = None

    def add_choice(self, choice: Any) -> None:
        """Add the logprobs of one OpenAI choice (an answer's, or a chunk's)."""
        if not isinstance(choice, dict):
            return
        lp = choice.get("logprobs")
        if not isinstance(lp, dict):
            return
        content = lp.get("content")
        if isinstance(content, list):  # chat
            for item in content:
                if isinstance(item, dict) and _finite(item.get("logprob")):
                    if self.first_top is None:
                        self.first_top = _tops(item.get("top_logprobs"))
                    self.tokens.append(float(item["logprob"]))
            return
        values = lp.get("token_logprobs")  # legacy completions
        if isinstance(values, list):
            tops = lp.get("top_logprobs") or []
            for i, value in enumerate(values):
                if _finite(value):
                    if self.first_top is None and i < len(tops) and isinstance(tops[i], dict):
                        self.first_top = [float(v) for v in tops[i].values() if _finite(v)]
                    self.tokens.append(float(value))

    def add_body(self, body: bytes) -> None:
        """Add the logprobs of a complete answer's first choice (or of one stream chunk's:
        its ``data:`` payload)."""
        if b'"logprobs"' not in body or body == b"[DONE]":
            return
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        choices = data.get("choices") if isinstance(data, dict) else None
        if isinstance(choices, list) and choices:
            self.add_choice(choices[0])

    add_chunk = add_body

    def value(self, metric: str) -> float | None:
        """``mean_logprob``, ``min_logprob`` or ``first_token_entropy`` (nats; the top
        alternatives renormalised), or ``None`` when the upstream sent no logprobs."""
        if not self.tokens:
            return None
        if metric == "mean_logprob":
            return sum(self.tokens) / len(self.tokens)
        if metric == "min_logprob":
            return min(self.tokens)
        tops = self.first_top or [self.tokens[0]]
        probs = [math.exp(v) for v in tops]
        total = sum(probs)
        return -sum(p / total * math.log(p / total) for p in probs if p > 0)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _tops(value: Any) -> list[float] | None:
    if not isinstance(value, list):
        return None
    return [float(t["logprob"]) for t in value if isinstance(t, dict) and _finite(t.get("logprob"))]


def strip_body(body: bytes) -> bytes:
    """A complete OpenAI answer without the logprobs of its choices."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not _strip(data):
        return body
    return orjson.dumps(data)


def strip_frames(batch: bytes) -> bytes:
    """SSE frames of an OpenAI stream without the logprobs of their choices."""
    if b'"logprobs"' not in batch:
        return batch
    out = []
    for frame in split_events(batch):
        data = event_data(frame)
        if data is not None and data != b"[DONE]" and b'"logprobs"' in data:
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                out.append(frame)
                continue
            if _strip(chunk):
                out.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
                continue
        out.append(frame)
    return b"".join(out)


def _strip(data: Any) -> bool:
    changed = False
    choices = data.get("choices") if isinstance(data, dict) else None
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict) and choice.get("logprobs") is not None:
            choice["logprobs"] = None
            changed = True
    return changed
