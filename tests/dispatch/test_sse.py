"""SSE framing: events split across reads in any way, any line end, in linear time, and an
event that never ends is bounded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

import pytest

from crossroads.dispatch.sse import MAX_EVENT_BYTES, frames, split_events
from crossroads.exceptions import UpstreamProtocolError

EVENTS = [b"data: a\n\n", b'data: {"b": 1}\nid: 2\n\n', b": keep-alive\n\n", b"data: [DONE]\n\n"]


async def chunks_of(pieces: Iterable[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def batches(pieces: Iterable[bytes], **limits: int) -> list[bytes]:
    return [batch async for batch in frames(chunks_of(pieces), "up", **limits)]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
async def test_events_split_across_reads_anywhere_come_out_whole(newline: bytes) -> None:
    stream = b"".join(EVENTS).replace(b"\n", newline)
    for size in range(1, len(stream) + 1):
        out = await batches(split(stream, size))
        assert all(batch.endswith(b"\n\n") for batch in out), (size, out)
        assert [e for batch in out for e in split_events(batch)] == EVENTS, size


async def test_a_read_of_whole_events_is_passed_on_as_it_came() -> None:
    read = b"".join(EVENTS)
    (batch,) = await batches([read])
    assert batch is read


async def test_a_trailing_partial_event_is_yielded_at_the_end() -> None:
    assert await batches([b"data: a\n\ndata: b", b"\r"]) == [b"data: a\n\n", b"data: b\n"]


async def test_a_stream_that_never_ends_an_event_fails_quickly() -> None:
    line = b"data: " + b"x" * 1017 + b"\n"  # 1 KiB lines, never a blank one
    stream = (line * 64 for _ in range(256))  # 16 MiB in 64 KiB reads
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamProtocolError, match=rf"max_event_bytes \({MAX_EVENT_BYTES} b"):
        await batches(stream)
    assert loop.time() - started < 5


async def test_splitting_is_linear_in_the_event_size() -> None:
    event = b"data: " + b"x" * (16 << 20) + b"\n\n"  # one 16 MiB event in 4 KiB reads
    loop = asyncio.get_running_loop()
    started = loop.time()
    out = await batches(split(event, 4096), max_event_bytes=64 << 20)
    assert loop.time() - started < 5  # quadratic buffering takes minutes
    assert out == [event]
