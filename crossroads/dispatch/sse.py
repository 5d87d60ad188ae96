"""Server-sent-event framing: split a byte stream into complete events, nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import wraps
from typing import Any, TypeVar

import orjson

from crossroads.exceptions import UpstreamProtocolError

DONE = b"data: [DONE]\n\n"
F = TypeVar("F", bound=Callable[..., Any])


async def frames(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Batches of complete SSE events (``...\\n\\n``, one or more) from arbitrary chunks:
    every complete event that one read delivered, in one piece, so the relay writes once per
    upstream read. CRLF line ends are normalised only when the upstream uses them; a trailing
    partial event is yielded as-is at the end."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        end = buffer.rfind(b"\n\n")
        if end >= 0:
            yield buffer[: end + 2]
            buffer = buffer[end + 2 :]
    if buffer.strip():
        yield buffer


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


def event_data(frame: bytes) -> bytes | None:
    """The ``data:`` payload of one event (joined over lines), or None for comments."""
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
