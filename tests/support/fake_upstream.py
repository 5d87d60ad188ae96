"""A fast fake OpenAI-compatible upstream with switchable faults: test and benchmark equipment.

A raw ASGI app (no framework) served by uvicorn on uvloop + httptools. Routes::

    GET  /v1/models             the configured model list
    POST /v1/chat/completions   echo reply ("echo: <last user text>"), tools, json, SSE
    POST /v1/completions        legacy completions, echo of the prompt, SSE
    POST /v1/embeddings         deterministic 8-d vectors, usage
    GET  /health                {"status": "ok"}
    POST /_control              {"fault": "503", "probability": 1.0, "count": 2} switches faults
                                (also "delay", "chunks", "chunk_delay", "reset_stats": true)
    GET  /_stats                request counts, faults injected, in-flight requests

A request's fault comes from, in order: the ``x-fake-fault`` header, ``metadata.fault``
in the body, then the server-wide schedule (construction, CLI or ``/_control``). Fault
names are listed in :mod:`tests.support.faults`.

Answers can be scripted per model (for plans that call several): ``metadata.script`` is
the JSON text of ``{model id: {reply, tool_arguments, finish, logprob, first_top, delay,
fault}}`` (see :func:`tests.support.fake_responses.scripted`), else ``scripts`` in the
config. Chat answers carry token logprobs when the request asks for them.

In a test::

    with FakeUpstream(models=["small", "large"], chunks=3) as upstream:
        client = openai.OpenAI(base_url=upstream.base_url, api_key="x")
        upstream.set_fault("503", count=1)   # next request fails, then healthy again

From a shell: ``python -m tests.support.fake_upstream --port 9100 --models a,b``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.support import fake_responses as bodies
from tests.support.faults import Fault, FaultSchedule, parse_fault
from tests.support.server_thread import BackgroundServer, bind, new_loop, uvicorn_server

Scope = dict[str, Any]
Message = dict[str, Any]

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
DONE = b"data: [DONE]\n\n"
MALFORMED = b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"ind'


@dataclass(slots=True)
class FakeUpstreamConfig:
    """Behaviour of a fake upstream; every field can also be set on the CLI."""

    models: list[str] = field(default_factory=lambda: ["fake-small", "fake-large"])
    strict_models: bool = False  # answer 404 for a model not in ``models``
    chunks: int = 4  # content deltas per streamed reply
    chunk_delay: float = 0.0  # seconds between streamed events
    delay: float = 0.0  # seconds before every completion response
    fault: str | None = None  # server-wide fault, e.g. "503" or "cut_stream:2"
    fault_probability: float = 1.0
    fault_count: int | None = None  # None: every request until changed
    seed: int | None = None  # for the probability draw
    name: str = "fake"  # appears in ids and ``system_fingerprint``
    reply: str | None = None  # fixed reply text instead of the echo
    hang_timeout: float = 300.0  # a "hang" ends after this, so nothing runs forever
    scripts: dict[str, dict[str, Any]] = field(default_factory=dict)  # per model id, when a
    # request's ``metadata.script`` does not say (see fake_responses.scripted)


class FakeUpstreamApp:
    """The ASGI application. ``stats`` counts requests; ``schedule`` holds the server fault."""

    def __init__(self, config: FakeUpstreamConfig | None = None) -> None:
        self.config = config or FakeUpstreamConfig()
        self.schedule = FaultSchedule(
            self.config.fault,
            self.config.fault_probability,
            self.config.fault_count,
            self.config.seed,
        )
        self.stats: Counter[str] = Counter()
        self.in_flight = 0
        self.traceparents: list[str] = []  # W3C trace context of the calls, in order
        self.metadata: list[Any] = []  # the ``metadata`` of each completion body, in order
        self._ids = itertools.count(1)
        self._closing: asyncio.Event | None = None

    # -- plumbing ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})

    def begin_shutdown(self) -> None:
        """Wake every sleeping or hanging request so the server can stop at once."""
        self._closing_event().set()

    def reset_closing(self) -> None:
        """Forget a previous shutdown, before serving again on a new event loop."""
        self._closing = None

    def _closing_event(self) -> asyncio.Event:
        if self._closing is None:
            self._closing = asyncio.Event()
        return self._closing

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but return early when the server shuts down."""
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing_event().wait(), seconds)

    async def _http(self, scope: Scope, receive: Any, send: Any) -> None:
        method, path = scope["method"], scope["path"]
        self.stats["requests"] += 1
        self.stats[f"{method} {path}"] += 1
        if method == "POST" and path in ("/v1/chat/completions", "/v1/completions"):
            for name, value in scope["headers"]:
                if name == b"traceparent":
                    self.traceparents.append(value.decode("latin-1"))
            self.in_flight += 1
            self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.in_flight)
            try:
                await self._completion(scope, receive, send, chat=path.endswith("chat/completions"))
            finally:
                self.in_flight -= 1
        elif method == "POST" and path == "/v1/embeddings":
            await self._embeddings(receive, send)
        elif method == "GET" and path == "/v1/models":
            created = int(time.time())
            data = [
                {"id": m, "object": "model", "created": created, "owned_by": self.config.name}
                for m in self.config.models
            ]
            await _send_json(send, 200, {"object": "list", "data": data})
        elif method == "GET" and path == "/health":
            await _send_json(send, 200, {"status": "ok"})
        elif method == "POST" and path == "/_control":
            await self._control(receive, send)
        elif method == "GET" and path == "/_stats":
            await _send_json(send, 200, self.snapshot())
        else:
            await _send_error(send, 404, f"no route {method} {path}", "not_found_error")

    def snapshot(self) -> dict[str, Any]:
        """Request counters, the current fault schedule and in-flight requests."""
        return {
            "counts": dict(self.stats),
            "in_flight": self.in_flight,
            "schedule": self.schedule.describe(),
        }

    async def _control(self, receive: Any, send: Any) -> None:
        try:
            body = orjson.loads(await _read_body(receive) or b"{}")
            if "fault" in body:
                self.schedule.set(
                    body["fault"], float(body.get("probability", 1.0)), body.get("count")
                )
            for key in ("delay", "chunk_delay"):
                if key in body:
                    setattr(self.config, key, float(body[key]))
            if "chunks" in body:
                self.config.chunks = int(body["chunks"])
            if body.get("reset_stats"):
                self.stats.clear()
        except (ValueError, TypeError) as exc:
            await _send_error(send, 400, f"bad /_control body: {exc}", "invalid_request_error")
            return
        await _send_json(send, 200, self.snapshot())

    async def _embeddings(self, receive: Any, send: Any) -> None:
        """Deterministic 8-d vectors from each input's hash; usage counts input tokens."""
        import hashlib

        body = orjson.loads(await _read_body(receive))
        items = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if items and isinstance(items[0], int):
            items = [items]
        data, tokens = [], 0
        for i, item in enumerate(items):
            digest = hashlib.sha256(str(item).encode()).digest()
            data.append(
                {"object": "embedding", "index": i, "embedding": [b / 255 for b in digest[:8]]}
            )
            tokens += len(item) if isinstance(item, list) else max(1, len(str(item).split()))
        await _send_json(
            send,
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    # -- completions --------------------------------------------------------------------------

    async def _completion(self, scope: Scope, receive: Any, send: Any, chat: bool) -> None:
        try:
            body = orjson.loads(await _read_body(receive))
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            self.metadata.append(body.get("metadata"))
            fault = self._fault_for(scope, body)
        except ValueError as exc:
            await _send_error(send, 400, str(exc), "invalid_request_error")
            return
        model = body.get("model")
        if not isinstance(model, str) or (chat and not isinstance(body.get("messages"), list)):
            await _send_error(
                send, 400, "'model' and 'messages' are required", "invalid_request_error"
            )
            return
        if self.config.strict_models and model not in self.config.models:
            message = f"model {model!r} not served here; models: {', '.join(self.config.models)}"
            await _send_error(send, 404, message, "invalid_request_error", "model_not_found")
            return
        script = bodies.scripted(body, model) or self.config.scripts.get(model, {})
        if script.get("fault"):
            fault = parse_fault(str(script["fault"]))
        self.stats[f"model {model}"] += 1
        if fault is not None:
            self.stats[f"fault {fault.kind}"] += 1
            if await self._early_fault(fault, receive, send):
                return
        await self._sleep(float(script.get("delay", self.config.delay)))
        n = next(self._ids)
        created = int(time.time())
        fingerprint = f"fp_{self.config.name}"
        stream = bool(body.get("stream"))
        if chat:
            reply = bodies.chat_reply(body, f"call_{self.config.name}_{n}", self.config.reply)
        else:
            reply = bodies.completion_reply(body, self.config.reply)
        reply = bodies.apply_script(reply, body, script)
        logprobs = bodies.logprobs_of(reply, body, script) if chat else None
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{self.config.name}-{n}"
        if not stream:
            if chat:
                answer = bodies.chat_completion(reply, rid, model, created, fingerprint, logprobs)
            else:
                answer = bodies.text_completion(reply, rid, model, created, fingerprint)
            await self._send_body(send, orjson.dumps(answer), fault)
            return
        self.stats["streams"] += 1
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if chat:
            events = bodies.chat_chunks(
                reply, rid, model, created, fingerprint, self.config.chunks, include_usage, logprobs
            )
        else:
            events = bodies.completion_chunks(
                reply, rid, model, created, fingerprint, self.config.chunks, include_usage
            )
        await self._send_stream(send, events, fault)

    def _fault_for(self, scope: Scope, body: dict[str, Any]) -> Fault | None:
        for name, value in scope["headers"]:
            if name == b"x-fake-fault":
                return parse_fault(value.decode("latin-1"))
        metadata = body.get("metadata")
        if isinstance(metadata, dict) and metadata.get("fault"):
            return parse_fault(str(metadata["fault"]))
        return self.schedule.draw()

    async def _early_fault(self, fault: Fault, receive: Any, send: Any) -> bool:
        """Apply faults that replace the answer; ``True`` when the request is done."""
        kind = fault.kind
        if kind == "refuse":
            await _close_connection(send)
        elif kind in ("500", "502", "503"):
            await _send_error(send, int(kind), f"injected fault {kind}", "server_error")
        elif kind == "429":
            retry_after = str(int(fault.arg or 1)).encode()
            await _send_error(
                send,
                429,
                "injected fault 429: rate limited",
                "rate_limit_error",
                extra_headers=[(b"retry-after", retry_after)],
            )
        elif kind == "hang":
            await self._hang(receive)
            await _close_connection(send)
        else:
            return False
        return True

    async def _hang(self, receive: Any) -> None:
        """Wait until the client disconnects, the server stops, or ``hang_timeout``."""
        disconnected = asyncio.ensure_future(receive())
        closing = asyncio.ensure_future(self._closing_event().wait())
        await asyncio.wait(
            [disconnected, closing],
            timeout=self.config.hang_timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        disconnected.cancel()
        closing.cancel()

    async def _send_body(self, send: Any, payload: bytes, fault: Fault | None) -> None:
        kind = fault.kind if fault else None
        if kind == "slow_ttft":
            await self._sleep(fault.arg or 0.0)  # type: ignore[union-attr]
        if kind == "malformed_json":
            await _send_json_bytes(send, 200, MALFORMED)
        elif kind in ("truncated_body", "cut_stream"):
            await _start(send, 200, JSON_HEADERS, len(payload))
            await send(
                {
                    "type": "http.response.body",
                    "body": payload[: len(payload) // 2],
                    "more_body": True,
                }
            )
            await _close_connection(send)
        elif kind == "slow_drip":
            await _start(send, 200, JSON_HEADERS, len(payload))
            step = max(1, len(payload) // 8)
            for start in range(0, len(payload), step):
                if start:
                    await self._sleep(fault.arg or 0.0)  # type: ignore[union-attr]
                piece = payload[start : start + step]
                more = start + step < len(payload)
                await send({"type": "http.response.body", "body": piece, "more_body": more})
        else:
            await _send_json_bytes(send, 200, payload)

    async def _send_stream(
        self, send: Any, events: list[dict[str, Any]], fault: Fault | None
    ) -> None:
        kind = fault.kind if fault else None
        frames = [b"data: " + orjson.dumps(event) + b"\n\n" for event in events]
        frames.append(DONE)
        await _start(send, 200, SSE_HEADERS, None)
        delay = self.config.chunk_delay
        if kind == "slow_ttft":
            await self._sleep(fault.arg or 0.0)  # type: ignore[union-attr]
        elif kind == "slow_drip":
            delay = fault.arg or 0.0  # type: ignore[union-attr]
        elif kind == "malformed_json":
            frames[1:-1] = [b"data: " + MALFORMED + b"\n\n"]
        elif kind == "cut_stream":
            frames = frames[: int(fault.arg or 0)]  # type: ignore[union-attr]
        elif kind == "truncated_body":
            frames = frames[:1] + [frames[1][: len(frames[1]) // 2]]
        cut = kind in ("cut_stream", "truncated_body")
        if delay <= 0 and not cut:
            # Nothing to wait for between events: one write instead of one per event.
            await send({"type": "http.response.body", "body": b"".join(frames), "more_body": False})
            return
        for i, frame in enumerate(frames):
            if i and delay > 0:
                await self._sleep(delay)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        if cut:
            await _close_connection(send)
        else:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


# -- ASGI helpers ----------------------------------------------------------------------------


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _start(
    send: Any, status: int, headers: list[tuple[bytes, bytes]], length: int | None
) -> None:
    if length is not None:
        headers = [*headers, (b"content-length", str(length).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def _send_json_bytes(
    send: Any, status: int, payload: bytes, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await _start(send, status, JSON_HEADERS + (extra_headers or []), len(payload))
    await send({"type": "http.response.body", "body": payload})


async def _send_json(send: Any, status: int, data: Any) -> None:
    await _send_json_bytes(send, status, orjson.dumps(data))


async def _send_error(
    send: Any,
    status: int,
    message: str,
    error_type: str,
    code: str | None = None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await _send_json_bytes(
        send, status, bodies.error_body(message, error_type, code), extra_headers
    )


async def _close_connection(send: Any) -> None:
    """Drop the TCP connection mid-request: what a crashed or refusing upstream does.

    uvicorn's ``send`` is a bound method of the request cycle that owns the transport;
    on any other server, raising makes it abort the response.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionAbortedError("fake upstream: injected connection drop")
    transport.close()
    # Let connection_lost run so uvicorn marks the cycle disconnected and stays quiet.
    for _ in range(10):
        if getattr(send.__self__, "disconnected", True):
            break
        await asyncio.sleep(0)


# -- running it ------------------------------------------------------------------------------


class FakeUpstream(BackgroundServer):
    """A fake upstream running in a background thread with its own event loop.

    Use as ``with FakeUpstream(...) as up:`` or ``async with``; ``up.base_url`` is
    ``http://127.0.0.1:PORT/v1``. ``stop()`` then ``start()`` again reuses the port,
    so a test can take an endpoint down and bring it back.
    """

    name = "fake-upstream"

    def __init__(
        self, config: FakeUpstreamConfig | None = None, *, port: int = 0, **options: Any
    ) -> None:
        self.config = config or FakeUpstreamConfig(**options)
        super().__init__(FakeUpstreamApp(self.config), port)

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ``http://127.0.0.1:PORT/v1``."""
        return self.url + "/v1"

    def before_start(self) -> None:
        self.app.reset_closing()

    def before_stop(self) -> None:
        self.app.begin_shutdown()  # wake hanging requests so shutdown is quick

    def set_fault(
        self, fault: str | None, probability: float = 1.0, count: int | None = None
    ) -> None:
        """Switch the server-wide fault (``None`` clears it); see ``/_control``."""
        self.app.schedule.set(fault, probability, count)

    def stats(self) -> dict[str, Any]:
        """A snapshot of ``GET /_stats``."""
        return self.app.snapshot()  # type: ignore[no-any-return]


# -- CLI -------------------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.fake_upstream",
        description="A fake OpenAI-compatible upstream with switchable faults.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--models", default="fake-small,fake-large", help="comma-separated ids")
    parser.add_argument("--strict-models", action="store_true", help="404 for models not listed")
    parser.add_argument("--chunks", type=int, default=4, help="content deltas per streamed reply")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between SSE events")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before every completion")
    parser.add_argument("--fault", default=None, help="server-wide fault, e.g. 503 or cut_stream:2")
    parser.add_argument("--fault-probability", type=float, default=1.0)
    parser.add_argument("--fault-count", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--name", default="fake")
    parser.add_argument("--reply", default=None, help="fixed reply text instead of the echo")
    parser.add_argument("--lifetime", type=float, default=None, help="exit after this many seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Serve a fake upstream until SIGINT/SIGTERM (or ``--lifetime``)."""
    args = _parse_args(argv)
    config = FakeUpstreamConfig(
        models=[m for m in args.models.split(",") if m],
        strict_models=args.strict_models,
        chunks=args.chunks,
        chunk_delay=args.chunk_delay,
        delay=args.delay,
        fault=args.fault,
        fault_probability=args.fault_probability,
        fault_count=args.fault_count,
        seed=args.seed,
        name=args.name,
        reply=args.reply,
    )
    try:
        parse_fault(config.fault)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    app = FakeUpstreamApp(config)
    sock = bind(args.host, args.port)
    server = uvicorn_server(app)

    async def serve() -> None:
        if args.lifetime:
            loop = asyncio.get_running_loop()
            loop.call_later(args.lifetime, setattr, server, "should_exit", True)
            loop.call_later(args.lifetime, app.begin_shutdown)
        host, port = sock.getsockname()[:2]
        print(f"READY http://{host}:{port}/v1", flush=True)
        await server.serve(sockets=[sock])

    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(serve())


if __name__ == "__main__":
    main()
