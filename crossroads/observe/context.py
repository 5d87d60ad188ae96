"""W3C trace context (``traceparent``): what a request's spans are called, and what the
dispatcher sends upstream. No OpenTelemetry import: ids are plain hex strings.

A request that arrives with a valid ``traceparent`` continues the caller's trace; otherwise
its OpenTelemetry trace id is the crossroads trace id, zero-padded to 32 hex digits, so
``x-crossroads-trace-id`` finds the request in a tracing backend too.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from typing import NamedTuple

from crossroads.types import Trace

TRACEPARENT: ContextVar[str | None] = ContextVar("crossroads_traceparent", default=None)
"""The ``traceparent`` header of the upstream call being made (set only when tracing is on)."""

_HEADER = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


class TraceContext(NamedTuple):
    """A request's place in a distributed trace."""

    trace_id: str  # 32 hex digits
    parent_span_id: str | None  # the caller's span, when it sent a traceparent
    sampled: bool


def parse_traceparent(header: str | None) -> tuple[str, str, bool] | None:
    """``(trace_id, parent_span_id, sampled)`` of a valid header, else None (W3C rules:
    version ``ff`` and all-zero ids are invalid; version 00 has exactly four fields)."""
    if not header:
        return None
    match = _HEADER.fullmatch(header.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE:
        return None
    if span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id, bool(int(flags, 16) & 1)


def trace_context(trace: Trace, sample_ratio: float) -> TraceContext:
    """The request's trace context: the caller's (parent-based sampling) or a new one
    sampled by ``sample_ratio`` on its trace id (as OpenTelemetry's ratio sampler does)."""
    caller = trace.caller
    parsed = parse_traceparent(caller.headers.get("traceparent")) if caller is not None else None
    if parsed is not None:
        return TraceContext(*parsed)
    trace_id = trace.trace_id.rjust(32, "0")[-32:]
    return TraceContext(trace_id, None, int(trace_id[-16:], 16) < sample_ratio * 2**64)


def enter_attempt(trace: Trace, sample_ratio: float) -> str:
    """A new span id for the next upstream attempt, and its ``traceparent`` in
    :data:`TRACEPARENT` for the upstream client to send."""
    context = trace_context(trace, sample_ratio)
    span_id = os.urandom(8).hex()
    TRACEPARENT.set(f"00-{context.trace_id}-{span_id}-{'01' if context.sampled else '00'}")
    return span_id
