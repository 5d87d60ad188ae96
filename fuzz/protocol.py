"""Fuzz target: bytes from a client into the gateway's HTTP/1.1 protocol.

    python fuzz/protocol.py -max_total_time=600 fuzz/corpus/protocol

Each input is split into reads (its first byte picks the split points) and fed to a
:class:`GatewayProtocol` over a fake transport, in front of the real gateway with the mock
upstream. Asserted: ``data_received`` never raises; once the app settles, every complete
request was answered (or the connection closed), never left hanging; the gateway never
answers a 5xx nor logs an error.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports(include=["crossroads"]):
    import crossroads.formats.anthropic_messages
    import crossroads.formats.openai_responses  # noqa: F401  (loaded lazily by the gateway)
    from crossroads.config import parse_config
    from crossroads.gateway import create_app
    from crossroads.gateway.protocol import GatewayProtocol
    from crossroads.store.memory import MemoryTraceStore

CONFIG = {
    "upstreams": [{"name": "mock", "kind": "mock"}],
    "models": [{"name": "small", "upstream": "mock"}],
    "default": {"models": ["small"]},
    "server": {"max_body_bytes": 4096},
    "store": {"traces": "memory"},
}


class Errors(logging.Handler):
    """Collects the error records the gateway logs (each one is a bug here)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class FakeTransport(asyncio.Transport):
    """Records what the protocol writes; closing reports ``connection_lost`` soon after."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: Any) -> None:
        super().__init__()
        self.loop, self.protocol = loop, protocol
        self.written = bytearray()
        self.closing = False
        self.paused = False
        self.eof = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        assert not (self.closing or self.eof) or not data, "write after close"
        self.written += data

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.loop.call_soon(self.protocol.connection_lost, None)

    abort = close

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8400)}.get(
            name, default
        )


class ServerState:
    def __init__(self) -> None:
        self.connections: set[Any] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.total_requests = 0
        self.default_headers = [(b"date", b"Thu, 01 Jan 2026 00:00:00 GMT")]


class Config:
    """What GatewayProtocol reads of uvicorn's config."""

    loaded = True
    timeout_keep_alive = 5.0

    def __init__(self, app: Any) -> None:
        self.loaded_app = app


class Harness:
    """One gateway and loop, reused by every input."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.app = create_app(parse_config(CONFIG), store=MemoryTraceStore())
        self.loop.run_until_complete(self.app.startup())
        self.config = Config(self.app)
        self.errors = Errors()
        logging.getLogger("crossroads").addHandler(self.errors)

    def settle(self, state: ServerState) -> None:
        """Run the loop until no request task is left (bounded: a hang fails)."""
        for _ in range(200):
            self.loop.run_until_complete(asyncio.sleep(0))
            if not state.tasks:
                return
        raise AssertionError("the gateway is still serving after 200 loop turns")

    def check(self, data: bytes) -> None:
        """Feed ``data`` in reads and assert the protocol's promises."""
        self.errors.records.clear()
        state = ServerState()
        protocol = GatewayProtocol(self.config, state, _loop=self.loop)
        transport = FakeTransport(self.loop, protocol)
        protocol.connection_made(transport)
        step = (data[0] % 61) + 1 if data else 1
        for start in range(1, max(len(data), 1), step):
            if transport.closing:
                break
            protocol.data_received(data[start : start + step])  # must not raise
            self.settle(state)
        self.settle(state)
        if not transport.closing:
            # Either idle between requests, or waiting for the rest of one.
            assert protocol.serving is None, "a request is in service with nothing running"
            assert not protocol.queue, "pipelined requests left unserved"
        written = bytes(transport.written)
        assert b"HTTP/1.1 5" not in written, written[:500]
        assert not self.errors.records, [r.getMessage() for r in self.errors.records]
        if not transport.closing:
            transport.close()
        self.loop.run_until_complete(asyncio.sleep(0))


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
