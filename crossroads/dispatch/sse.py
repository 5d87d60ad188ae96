"""Server-sent-event framing: split a byte stream into complete events, nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator

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
