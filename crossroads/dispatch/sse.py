"""Server-sent-event framing: split a byte stream into complete events, nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from crossroads.exceptions import UpstreamProtocolError

DONE = b"data: [DONE]\n\n"


async def frames(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Complete SSE events (``...\\n\\n``) from arbitrary chunks; CRLF line ends normalised
    only when the upstream uses them. A trailing partial event is yielded as-is."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        while True:
            end = buffer.find(b"\n\n")
            if end < 0:
                break
            yield buffer[: end + 2]
            buffer = buffer[end + 2 :]
    if buffer.strip():
        yield buffer


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
