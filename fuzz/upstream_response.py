"""Fuzz target: bytes from an upstream into the gateway's HTTP/1.1 client and stream reader.

    python fuzz/upstream_response.py -max_total_time=600 fuzz/corpus/upstream_response

Each input is an upstream's answer to one call; its first byte picks the operation (chat,
completions, embeddings), whether the call streams, whether the connection ends in a reset,
and the size of the reads the answer arrives in. The answer goes where a real one goes: the
OpenAI-compatible upstream on the raw client (:mod:`crossroads.dispatch.rawhttp`: the
pool's exchange over a :class:`Connection` fed by a fake transport, ``StreamResponse``),
error statuses, :mod:`crossroads.dispatch.sse` framing, the dispatcher's first-content
check, and the formats' decoders the engine runs for clients of another format.
Asserted: only ``UpstreamError``s escape (the gateway answers those with a 4xx/5xx of its
own, never an internal error), and every call ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports(include=["crossroads"]):
    from crossroads.config.upstreams import OpenAIUpstreamConfig
    from crossroads.dispatch.dispatcher import _any_content
    from crossroads.dispatch.openai import OpenAIUpstream
    from crossroads.dispatch.rawhttp.connection import Connection
    from crossroads.dispatch.rawhttp.pool import ConnectionPool
    from crossroads.dispatch.sse import event_data, split_events
    from crossroads.exceptions import UpstreamError
    from crossroads.formats import anthropic_messages, get_format

NAME = "fuzzed"
OPERATIONS = ("chat", "completions", "embeddings", "chat")
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "prompt": "hi"}


class FakeTransport(asyncio.Transport):
    """Answers the request written to it with ``chunks``, one per loop turn, then closes."""

    def __init__(self, conn: Connection, chunks: list[bytes], reset: bool) -> None:
        super().__init__()
        self.conn, self.chunks, self.reset = conn, chunks, reset
        self.closing = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.conn.loop.call_soon(self._deliver, 0)

    def _deliver(self, i: int) -> None:
        if self.closing:
            return
        if i < len(self.chunks):
            self.conn.data_received(self.chunks[i])  # must not raise
            self.conn.loop.call_soon(self._deliver, i + 1)
        else:  # the upstream hangs up after its answer
            self.closing = True
            self.conn.connection_lost(ConnectionResetError("reset") if self.reset else None)

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.conn.loop.call_soon(self.conn.connection_lost, None)

    abort = close

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class FuzzPool(ConnectionPool):
    """The real pool, whose one connection is answered by the fuzzer's bytes."""

    def __init__(self, timeouts: Any, chunks: list[bytes], reset: bool) -> None:
        super().__init__("127.0.0.1", 9, name=NAME, timeouts=timeouts, max_connections=1)
        self.chunks, self.reset = chunks, reset

    async def _acquire(self, total_at: float, fresh: bool) -> Connection:
        self._open += 1
        conn = Connection(self)
        conn.connection_made(FakeTransport(conn, self.chunks, self.reset))
        return conn


async def call(data: bytes) -> None:
    flags = data[0] if data else 0
    operation = OPERATIONS[flags & 3]
    stream, reset = bool(flags & 4) and operation != "embeddings", bool(flags & 8)
    step = (flags >> 4) * 7 + 1
    answer = data[1:]
    chunks = [answer[i : i + step] for i in range(0, len(answer), step)]
    config = OpenAIUpstreamConfig(name=NAME, base_url="http://127.0.0.1:9/v1")
    upstream = OpenAIUpstream(config)
    upstream._pool = FuzzPool(config.timeouts, chunks, reset)
    fmt = get_format(upstream.formats[operation])
    # The same bytes through Anthropic's readers too: they parse arbitrary JSON the same way.
    readers = [fmt] if operation != "chat" else [fmt, anthropic_messages]
    try:
        if not stream:
            completion = await upstream.complete(operation, BODY)  # type: ignore[arg-type]
            if operation != "embeddings":  # the engine reads it for clients of other formats
                for reader in readers:
                    with contextlib.suppress(UpstreamError):
                        reader.parse_response(completion.body, NAME)
            return
        events = upstream.stream(operation, BODY)  # type: ignore[arg-type]
        decoders = [reader.stream_decoder(NAME) for reader in readers]
        try:
            async for batch in events:
                _any_content(batch, fmt.stream_decoder(NAME))  # the dispatcher
                for frame in split_events(batch):  # the engine
                    payload = event_data(frame)
                    if payload is None:
                        continue
                    for decode in decoders[1:]:
                        with contextlib.suppress(UpstreamError):
                            decode(frame, payload)
                    if decoders[0](frame, payload).done:
                        return
        finally:
            await events.aclose()  # type: ignore[attr-defined]
    except UpstreamError:
        pass
    finally:
        await upstream.aclose()


class Harness:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)

    def check(self, data: bytes) -> None:
        # Every read is delivered on its own loop turn: 5 s means the call never ended.
        self.loop.run_until_complete(asyncio.wait_for(call(data), 5))


HARNESS: Harness | None = None


def test_one_input(data: bytes) -> None:
    global HARNESS
    if HARNESS is None:
        HARNESS = Harness()
    HARNESS.check(data)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
