"""Server-sent-event framing: split a byte stream into complete events, nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import wraps
from typing import Any, TypeVar

import orjson

from crossroads.exceptions import UpstreamProtocolError

DONE = b"data: [DONE]\n\n"
F = TypeVar("F", bound=Callable[..., Any])


MAX_EVENT_BYTES = 8 * 1024 * 1024  # the default of an upstream's max_event_bytes


def frames(
    chunks: AsyncIterator[bytes], upstream: str = "upstream", max_event_bytes: int = MAX_EVENT_BYTES
) -> AsyncIterator[bytes]:
    """Batches of complete SSE events (``...\\n\\n``, one or more) from arbitrary chunks:
    every complete event that one read delivered, in one piece, so the relay writes once per
    upstream read. CRLF and CR line ends are normalised to LF only when the upstream uses
    them; a trailing partial event is yielded as-is at the end.

    Linear in the bytes: each chunk is searched once, and an unfinished event is kept in one
    growing buffer; a read of whole events is yielded as it came, without a copy. An event
    still unfinished after ``max_event_bytes`` is the upstream's protocol error."""
    return _Frames(chunks.__aiter__(), upstream, max_event_bytes)


class _Frames:
    """:func:`frames` as an iterator object, not an async generator: the event loop tracks
    no generator per stream, and a stream its consumer leaves at the last event (never
    reading on to the end) leaves no generator for the loop to finalize with a task."""

    __slots__ = ("chunks", "upstream", "limit", "pending", "held_cr", "ended")

    def __init__(self, chunks: AsyncIterator[bytes], upstream: str, limit: int) -> None:
        self.chunks = chunks
        self.upstream = upstream
        self.limit = limit
        self.pending = bytearray()  # the start of an unfinished event (never a blank line)
        self.held_cr = False  # the last chunk ended with CR: maybe the first half of a CRLF
        self.ended = False

    def __aiter__(self) -> _Frames:
        return self

    async def __anext__(self) -> bytes:
        pending = self.pending
        while not self.ended:
            try:
                chunk = await self.chunks.__anext__()
            except StopAsyncIteration:
                self.ended = True
                break
            if self.held_cr or chunk.find(b"\r") != -1:  # not ``in``: it raises inside
                if self.held_cr:
                    chunk = b"\r" + chunk
                self.held_cr = chunk.endswith(b"\r")
                if self.held_cr:
                    chunk = chunk[:-1]
                chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            end = chunk.rfind(b"\n\n") + 2  # just past the last complete event
            if end < 2:  # none in the chunk, unless its blank line began in the last one
                end = 1 if pending and pending[-1] == 10 and chunk[:1] == b"\n" else 0
            if not end:
                pending += chunk
                if len(pending) > self.limit:
                    raise _too_long(self.upstream, self.limit)
                continue
            if pending:
                pending += memoryview(chunk)[:end]
                batch = bytes(pending)
                pending.clear()
            else:
                batch = chunk if end == len(chunk) else chunk[:end]
            if end < len(chunk):
                pending += memoryview(chunk)[end:]
                if len(pending) > self.limit:
                    raise _too_long(self.upstream, self.limit)
            return batch
        if self.held_cr:
            self.held_cr = False
            pending += b"\n"
        if pending.strip():
            batch = bytes(pending)
            pending.clear()
            return batch
        raise StopAsyncIteration


def _too_long(upstream: str, limit: int) -> UpstreamProtocolError:
    return UpstreamProtocolError(
        f"upstream {upstream!r} sent a stream event longer than max_event_bytes ({limit} bytes)",
        upstream=upstream,
    )


def split_events(batch: bytes) -> list[bytes]:
    """The single events of a batch from :func:`frames`, each ending ``\\n\\n`` (a trailing
    partial event as-is)."""
    if batch.count(b"\n\n") <= 1:
        return [batch]
    parts = batch.split(b"\n\n")
    events = [p + b"\n\n" for p in parts[:-1] if p]
    if parts[-1]:
        events.append(parts[-1])
    return events


def marked_events(
    batch: bytes, marks: tuple[bytes, ...], first: int | None = None
) -> list[tuple[int, int]]:
    """Where the events of a batch from :func:`frames` that hold any of ``marks`` begin and
    end (``batch[start:end]``, each ending ``\\n\\n`` or the batch), in order; empty when none
    does. Found by searching for the marks, not by splitting the batch into its events;
    ``first``: where ``marks[0]`` first occurs, if the caller found it already."""
    spans = []
    for mark in marks:
        # not ``in``: CPython 3.11 raises a TypeError inside it
        at = batch.find(mark) if first is None else first
        first = None
        while at != -1:
            start = batch.rfind(b"\n\n", 0, at)
            end = batch.find(b"\n\n", at)
            end = len(batch) if end == -1 else end + 2
            spans.append((0 if start == -1 else start + 2, end))
            at = batch.find(mark, end)
    if len(spans) > 1:
        spans = sorted(set(spans))  # an event may hold two marks
    return spans


def event_data(frame: bytes) -> bytes | None:
    """The ``data:`` payload of one event (joined over lines), or None for comments."""
    end = len(frame) - 2
    if frame.find(b"\n") == end and frame.startswith(b"data:") and frame.endswith(b"\n\n"):
        return frame[5:end].lstrip(b" ")  # the usual event: one data line
    parts = [line[5:].lstrip(b" ") for line in frame.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(parts) if parts else None


def parse_event(data: bytes, upstream: str) -> dict[str, Any]:
    """One event's JSON; anything else is the upstream's protocol error."""
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        chunk = None
    if not isinstance(chunk, dict):
        raise UpstreamProtocolError(
            f"upstream {upstream!r} sent an event that is not a JSON object: {data[:200]!r}",
            upstream=upstream,
        )
    if "error" in chunk and "choices" not in chunk:
        raise UpstreamProtocolError(
            f"upstream {upstream!r} sent an error mid-stream: {data[:300].decode('utf-8', 'replace')}",
            upstream=upstream,
        )
    return chunk


def shape_checked(func: F) -> F:
    """For readers of an upstream's JSON whose last argument is the upstream's name: JSON of
    the wrong shape (a number where an object belongs, a string for a list) becomes that
    upstream's protocol error, as invalid JSON does, instead of an internal error."""

    @wraps(func)
    def checked(*args: Any) -> Any:
        try:
            return func(*args)
        except (AttributeError, TypeError, KeyError, IndexError) as exc:
            upstream = args[-1]
            raise UpstreamProtocolError(
                f"upstream {upstream!r} answered JSON of an unexpected shape "
                f"({type(exc).__name__}: {exc})",
                upstream=upstream,
            ) from None

    return checked  # type: ignore[return-value]
