"""Relay an upstream's SSE stream to the client event by event, without re-encoding.

Only events that mention ``usage`` are parsed (to cost the call). Once the first event is
forwarded, a failure ends the stream with an SSE error event and ``[DONE]``: the client
never hangs and never gets a silently truncated answer.
"""

from __future__ import annotations

import time
from typing import Any

from crossroads.config import ModelConfig
from crossroads.cost import actual_cost
from crossroads.dispatch.base import usage_from
from crossroads.dispatch.dispatcher import Dispatcher
from crossroads.dispatch.sse import DONE, event_data, parse_event, split_events
from crossroads.exceptions import UpstreamProtocolError
from crossroads.gateway.errors import render
from crossroads.tokens import count_tokens
from crossroads.types import Endpoint, Trace, Usage

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


async def relay_stream(
    send: Any,
    dispatcher: Dispatcher,
    chain: list[str],
    endpoint: Endpoint,
    body: dict[str, Any],
    headers: list[tuple[bytes, bytes]],
    trace: Trace,
    start: float,
    prefix: str,
) -> None:
    """Stream ``body`` to ``send`` through the first model/endpoint of ``chain`` that starts
    a stream. Raises only before the response has started (so the caller can answer with a
    plain error status); afterwards errors travel inside the stream."""
    options = body.get("stream_options") or {}
    client_wants_usage = bool(options.get("include_usage"))
    body["stream_options"] = {**options, "include_usage": True}
    stream = await dispatcher.open_stream(chain, endpoint, body, trace, prefix)
    model = stream.model
    trace.model, trace.upstream = model.name, stream.endpoint.key
    trace.ttft_ms = (time.perf_counter() - start) * 1000
    ok, failure = False, None

    async def emit(chunk: bytes, more: bool = True) -> None:
        try:
            await send({"type": "http.response.body", "body": chunk, "more_body": more})
        except Exception as exc:  # the ASGI server could not write: the client is gone
            raise _ClientGone from exc

    try:
        response_headers = [h for h in headers if h[0] != b"content-type"] + SSE_HEADERS
        response_headers.append((b"x-crossroads-model", model.name.encode()))
        if len(trace.attempts) > 1:
            response_headers.append((b"x-crossroads-attempts", str(len(trace.attempts)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": response_headers})
        done = False
        head = iter(stream.head)
        batch: bytes | None = next(head)
        name = stream.endpoint.upstream.name
        ledger = _Ledger(trace, model, name, client_wants_usage)
        try:
            while batch is not None and not done:
                out = []
                for frame in split_events(batch):
                    data = event_data(frame)
                    if data == b"[DONE]":
                        done = True
                        out.append(DONE)
                        break
                    if data is not None and ledger.take(data):
                        out.append(frame)
                if out:  # one write per upstream read, whatever it held
                    await emit(out[0] if len(out) == 1 else b"".join(out))
                if not done:
                    batch = next(head, None) or await anext(stream.rest, None)
            if not done:
                raise UpstreamProtocolError(
                    f"upstream {name!r} ended the stream before [DONE]: the answer is incomplete",
                    upstream=name,
                )
            ok = True
            ledger.settle()
        except _ClientGone:
            raise
        except Exception as exc:  # after the start line, errors must travel inside the stream
            status, payload, _ = render(exc)
            trace.status, trace.error = status, str(exc)
            failure = str(exc)
            await emit(b"data: " + payload + b"\n\n" + DONE)
        await emit(b"", more=False)
    except _ClientGone:
        if ok:  # everything was delivered but the final empty write
            return
        trace.status, trace.error = 499, "client disconnected mid-stream; upstream call cancelled"
    finally:
        await stream.aclose(ok, failure)
        if ok and trace.usage and trace.usage.completion_tokens > 1 and trace.ttft_ms is not None:
            rest_ms = (time.perf_counter() - start) * 1000 - trace.ttft_ms
            stream.endpoint.observe_tpot(rest_ms / (trace.usage.completion_tokens - 1))


class _ClientGone(Exception):
    """Writing to the client failed: it disconnected."""


class _Ledger:
    """What a relayed stream cost: the upstream's usage event, or, when it sends none (some
    servers ignore ``stream_options``), an estimate from the relayed text."""

    __slots__ = ("trace", "model", "upstream", "wants_usage", "pieces")

    def __init__(self, trace: Trace, model: ModelConfig, upstream: str, wants_usage: bool) -> None:
        self.trace = trace
        self.model = model
        self.upstream = upstream
        self.wants_usage = wants_usage
        self.pieces: list[str] = []

    def take(self, data: bytes) -> bool:
        """Check one event and account for it; whether to forward it (a usage-only event the
        client did not ask for is dropped). Every event is parsed, so a broken one never
        reaches the client."""
        chunk = parse_event(data, self.upstream)
        usage = usage_from(chunk)
        if usage is not None:
            self.trace.usage = usage
            self.trace.cost = actual_cost(self.model, usage)
            return self.wants_usage or bool(chunk.get("choices"))
        if self.trace.usage is None:
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or choice
                text = delta.get("content") or delta.get("text")
                if text:
                    self.pieces.append(text)
                for call in delta.get("tool_calls") or ():
                    self.pieces.append((call.get("function") or {}).get("arguments") or "")
        return True

    def settle(self) -> None:
        """Estimate usage when the upstream reported none."""
        trace = self.trace
        if trace.usage is not None or trace.route is None:
            return
        completion = count_tokens("".join(self.pieces))
        trace.usage = Usage(trace.route.prompt_tokens_estimate, completion, estimated=True)
        trace.cost = actual_cost(self.model, trace.usage)
