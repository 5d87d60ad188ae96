"""The gateway as a plain ASGI application: no framework between the socket and the router.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``POST /v1/messages``
(Anthropic), ``POST /v1/responses`` (OpenAI Responses, stateless), ``POST /v1/embeddings``,
``GET /v1/models``,
``GET /v1/models/{id}``, ``GET /health``, ``GET /ready`` (the ``/v1`` prefix is optional),
``GET /v1/crossroads/endpoints``: live endpoint state (load, latency, circuit),
``POST /v1/crossroads/feedback``: a reward for an answer (:mod:`crossroads.gateway.feedback`),
``GET /metrics`` (Prometheus, at ``metrics.path``),
``GET /openapi.json``: the OpenAPI 3.1 document of all of these (no API key needed), and,
behind the admin key, the dashboard at ``/ui`` and its API under ``/v1/crossroads/admin/``
(keys, teams and spend: :mod:`crossroads.gateway.admin`).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from crossroads.config import ApiKey, Config
from crossroads.dashboard.api import Dashboard
from crossroads.dispatch.base import Upstream
from crossroads.dispatch.dispatcher import Dispatcher
from crossroads.dispatch.fleet import Fleet
from crossroads.engine import Engine
from crossroads.exceptions import (
    ClientGoneError,
    CrossroadsError,
    InvalidRequestError,
    MethodNotAllowedError,
    RequestError,
    UnsupportedRouteError,
    UpstreamError,
)
from crossroads.formats import get_format
from crossroads.gateway.admin import ADMIN_PATHS, AdminAPI
from crossroads.gateway.errors import error_code, render, too_large
from crossroads.gateway.feedback import FEEDBACK_PATHS, INLINE_KEY, FeedbackAPI
from crossroads.gateway.handlers import FormatHandler, routing_headers, send_body
from crossroads.gateway.openapi import openapi_json
from crossroads.gateway.protocol import serving_task
from crossroads.gateway.reload import Reloader
from crossroads.limits import Limits, may_use
from crossroads.pipeline import Pipeline
from crossroads.plans import build_plans
from crossroads.redact import bounded, recorded_caller
from crossroads.store import TraceStore, open_trace_store
from crossroads.types import Caller, Trace

if TYPE_CHECKING:
    from crossroads.keys.ring import KeyRing
    from crossroads.observe.otel import SpanExport
    from crossroads.observe.workers import WorkerMetrics

log = logging.getLogger("crossroads.gateway")

Scope = dict[str, Any]
JSON_HEADERS = [(b"content-type", b"application/json")]
# The dashboard and the admin API it reads (crossroads.dashboard).
ADMIN_PREFIXES = ("/ui/", "/v1/crossroads/admin/")
# The route table of model calls: path -> the wire format it speaks.
FORMAT_ROUTES: dict[str, str] = {
    "/v1/chat/completions": "openai_chat",
    "/v1/completions": "openai_completions",
    "/v1/messages": "anthropic_messages",
    "/v1/responses": "openai_responses",
    "/v1/embeddings": "openai_embeddings",
}


class Unauthorized(RequestError):
    """401: missing or unknown API key."""

    status = 401
    code = "invalid_api_key"


class KeyStoreUnavailable(RequestError):
    """503: a change to the key store could not be read, so virtual keys are not trusted."""

    status = 503
    error_type = "server_error"
    code = "key_store_unavailable"


class AdminDisabled(RequestError):
    """403: the admin API is off (no ``server.admin_key_env``)."""

    status = 403
    code = "admin_api_disabled"


def build_upstream(config: Any) -> Upstream:
    """The upstream client for one ``upstreams[]`` entry, by its ``kind`` (plugins too)."""
    from crossroads.registry import UPSTREAMS

    upstream: Upstream = UPSTREAMS.get(config.kind)(config)
    return upstream


class Gateway:
    """The ASGI app. Construct with :func:`create_app`; state is built at start-up."""

    def __init__(
        self,
        config: Config,
        *,
        store: TraceStore | None = None,
        upstreams: dict[str, Upstream] | None = None,
        freeze_gc: bool = False,
        config_path: str | Path | None = None,
    ) -> None:
        self.config = config
        self.freeze_gc = freeze_gc
        self._store_override = store
        self._upstream_overrides = upstreams or {}
        self.config_path = config_path
        self.several_workers = False  # other worker processes serve (and trace) beside it
        self._started = False
        self._start_lock: asyncio.Lock | None = None

    # ------------------------------------------------------------------ lifecycle

    async def startup(self) -> None:
        """Compile the config, open the trace store, create upstream clients (idempotent)."""
        if self._started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            from crossroads.tokens import warm_up

            cfg = self.config
            warm_up()
            self.upstreams: dict[str, Upstream] = {
                u.name: self._upstream_overrides.get(u.name) or build_upstream(u)
                for u in cfg.upstreams
            }
            self.dispatcher = Dispatcher(cfg, self.upstreams).prepare()
            self.pipeline = Pipeline(cfg, availability=self.dispatcher.unavailable).prepare()
            self.limits = Limits(cfg, budget_signal=self.pipeline.uses_signal("budget"))
            self.fleet = Fleet.start_for(cfg, self.dispatcher, self.limits.state)
            self.install(cfg, self.upstreams, self.dispatcher, self.pipeline)
            self.store = self._store_override or open_trace_store(
                cfg.store.traces,
                cfg.store.flush_interval_ms,
                cfg.store.batch_size,
                cfg.store.retention_days,
                max_queue=cfg.store.max_queue,
                drain_timeout_s=cfg.store.drain_timeout_s,
            )
            self.store.start()
            self.metrics = self._metrics() if cfg.metrics.enabled else None
            self.spans = self._spans() if cfg.opentelemetry.enabled else None
            self._observers = tuple(o.observe for o in (self.metrics, self.spans) if o is not None)
            self.keys = _api_keys(cfg)
            self._watchers = _Watchers()
            self.teams = {team.name: team for team in cfg.teams}
            self.key_ring = _key_ring(cfg)
            self._auth = bool(self.keys) or self.key_ring is not None
            self.admin_api = AdminAPI(self)
            self.feedback_api = FeedbackAPI(self, self.several_workers)
            self.admin_key = _admin_key(cfg)
            self.dashboard = Dashboard(self).prepare()
            self.reloader = Reloader(self)
            self.reloader.listen()
            self._started = True
            if self.freeze_gc:
                # Everything built so far lives as long as the process: keep it out of the
                # cyclic GC's full collections, which otherwise scan it all (tens of ms).
                gc.collect()
                gc.freeze()
                # With the default first threshold (700) the objects of the requests in
                # flight alone trigger a young collection every few dozen requests (about
                # 20 us of CPU a request at saturation, bench/RESULTS.md); requests make no
                # reference cycles, so collect rarely, each collection still scanning only
                # what was allocated since the last.
                gc.set_threshold(GC_FIRST_THRESHOLD)

    def install(
        self,
        cfg: Config,
        upstreams: dict[str, Upstream],
        dispatcher: Dispatcher,
        pipeline: Pipeline,
    ) -> None:
        """Serve ``cfg`` with these parts from now on: a new engine and handlers, and what
        is derived from the config. Nothing here awaits, so a request sees all of the old
        parts or all of the new (one that started on the old engine finishes on it)."""
        self.config = cfg
        self.upstreams = upstreams
        self.dispatcher = dispatcher
        self.pipeline = pipeline
        self.engine = Engine(
            pipeline,
            dispatcher,
            cfg.dispatch.prefix_chars,
            build_plans(cfg, self.limits.state.backend),
            self.limits,
            keep_prompts=cfg.store.prompts,
        )
        handlers: dict[str, FormatHandler] = {}
        for path, name in FORMAT_ROUTES.items():
            handler = FormatHandler(get_format(name), self.engine)
            handlers[path] = handlers[path.removeprefix("/v1")] = handler
        self.handlers = handlers
        self._header_names = frozenset(
            s.header.lower()
            for s in cfg.signals
            if s.kind == "metadata" and s.source == "header" and s.header
        ) | ({"traceparent"} if cfg.opentelemetry.enabled else set())
        created = int(time.time())
        self._model_cards = {
            name: {"id": name, "object": "model", "created": created, "owned_by": "crossroads"}
            for name in pipeline.model_names()
        }
        self._models_body = orjson.dumps(
            {"object": "list", "data": list(self._model_cards.values())}
        )

    def _metrics(self) -> WorkerMetrics:
        from crossroads.observe.workers import DIR_ENV, WorkerMetrics

        names = frozenset(self.pipeline.model_names())
        metrics = WorkerMetrics(
            self.config.metrics, names, self.dispatcher, self.store, os.environ.get(DIR_ENV)
        )
        metrics.start()
        return metrics

    def _spans(self) -> SpanExport:
        from crossroads.observe.otel import SpanExport

        concurrent = frozenset(n for n, s in self.pipeline.signals_.items() if s.is_async)
        return SpanExport(self.config.opentelemetry, self.config, concurrent).start()

    async def shutdown(self) -> None:
        """Close upstream connections and flush traces."""
        if not self._started:
            return
        await self.reloader.aclose()
        if self.metrics is not None:
            self.metrics.close()
        if self.spans is not None:
            self.spans.close()
        for upstream in self.upstreams.values():
            try:
                await upstream.aclose()
            except Exception:  # closing must not stop the others from closing
                log.exception("closing upstream %s failed", upstream.name)
        if self.fleet is not None:
            await self.fleet.aclose()
        await self.pipeline.aclose()
        await self.limits.aclose(self.config.server.shutdown_timeout_s / 2)
        self.store.close()
        if self.key_ring is not None:
            self.key_ring.close()
        self._started = False

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            if not self._started:
                await self.startup()
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Any, send: Any) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        ring = self.key_ring
        if ring is not None and ring.stale():  # a key changed: catch up before answering
            await ring.catch_up()
        handler = self.handlers.get(path)
        if handler is not None:
            if method != "POST":
                return await self._error(send, MethodNotAllowedError(f"Use POST for {path}."))
            return await self._serve(scope, receive, send, handler)
        if path in ("/v1/messages/count_tokens", "/messages/count_tokens"):
            return await self._count_tokens(scope, receive, send, method)
        if path in ("/v1/models", "/models"):
            if method != "GET":
                return await self._error(send, MethodNotAllowedError(f"Use GET for {path}."))
            try:
                caller = self._caller(scope)
            except RequestError as exc:
                return await self._error(send, exc)
            cards = [card for name, card in self._model_cards.items() if may_use(caller, name)]
            body = self._models_body
            if len(cards) < len(self._model_cards):  # a policy lists what the key may use
                body = orjson.dumps({"object": "list", "data": cards})
            return await send_body(send, 200, body, JSON_HEADERS)
        if path.startswith(("/v1/models/", "/models/")) and method == "GET":
            try:
                caller = self._caller(scope)
            except RequestError as exc:
                return await self._error(send, exc)
            name = path.split("/models/", 1)[1]
            card = self._model_cards.get(name)
            if card is None or not may_use(caller, name):
                from crossroads.exceptions import ModelNotFoundError

                # OpenAI's answer: a model the key may not use is not told apart from none.
                message = f"The model {name!r} does not exist or you do not have access to it."
                return await self._error(send, ModelNotFoundError(message, param="model"))
            return await send_body(send, 200, orjson.dumps(card), JSON_HEADERS)
        if path == "/v1/crossroads/endpoints" and method == "GET":
            try:
                self._caller(scope)
            except RequestError as exc:
                return await self._error(send, exc)
            body = orjson.dumps({"object": "list", "data": self.dispatcher.snapshot()})
            return await send_body(send, 200, body, JSON_HEADERS)
        if path in FEEDBACK_PATHS:
            return await self.feedback_api(scope, receive, send)
        if path.startswith(ADMIN_PATHS):
            return await self.admin_api(scope, receive, send)
        if path.startswith(ADMIN_PREFIXES) or path == "/ui":
            return await self.dashboard.serve(scope, send)
        if self.metrics is not None and path == self.config.metrics.path:
            return await self._scrape(scope, method, send)
        if path == "/openapi.json" and method == "GET":
            return await send_body(send, 200, openapi_json(), JSON_HEADERS)
        if path == "/health":
            return await send_body(send, 200, b'{"status":"ok"}', JSON_HEADERS)
        if path == "/ready":
            ready = self.store.healthy()
            report = {"store": ready, "traces": self.store.stats()}
            if ring is not None:
                report["keys"] = ring.stats()
                ready = ready and ring.trusted()
            if self.limits.used or self.fleet is not None:
                report["state"] = self.limits.stats()
            body = orjson.dumps({"status": "ready" if ready else "degraded", **report})
            return await send_body(send, 200 if ready else 503, body, JSON_HEADERS)
        await self._error(send, UnsupportedRouteError(f"No route for {method} {path}."))

    # ------------------------------------------------------------------ model calls

    async def _serve(self, scope: Scope, receive: Any, send: Any, handler: FormatHandler) -> None:
        start = time.perf_counter()
        now = time.time()
        trace = Trace(new_trace_id(now), now, "", "chat", False, handler.fmt.NAME)  # format
        gone = _Disconnect(receive, start)
        watching = False
        engine = handler.engine  # a reload meanwhile: this request finishes on its engine
        engine.in_flight += 1
        try:
            caller = self._caller(scope)
            trace.caller = caller
            request = handler.parse(await self._read_body(scope, receive))
            trace.operation = request.operation
            caller.user = request.user
            if request.metadata and INLINE_KEY in request.metadata:
                trace.feedback = await self.feedback_api.inline(request, caller.key_name)
            # Fast requests never pay for a watcher task: it starts after WATCH_AFTER_S.
            self._watchers.add(gone)
            watching = True
            await handler.serve(request, caller, trace, send, start)
        except asyncio.CancelledError:
            if not gone.happened:
                raise
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            trace.status, trace.error = 499, "client disconnected; upstream call cancelled"
            trace.error_code = CLIENT_GONE
        except ClientGoneError:
            trace.status, trace.error = 499, "client disconnected before the answer was written"
            trace.error_code = CLIENT_GONE
        except Exception as exc:
            status, payload, extra = handler.error(exc, trace.trace_id)
            trace.status, trace.error_code = status, error_code(exc)
            trace.error = payload.decode() if not isinstance(exc, CrossroadsError) else str(exc)
            if isinstance(exc, UpstreamError):  # the client read a generic message
                log.log(
                    logging.WARNING if status >= 500 else logging.INFO,
                    "upstream error on %s (trace %s): %s",
                    scope["path"],
                    trace.trace_id,
                    bounded(str(exc), ERROR_CHARS),
                )
            elif not isinstance(exc, CrossroadsError):
                log.exception("unexpected error on %s (trace %s)", scope["path"], trace.trace_id)
            await send_body(send, status, payload, JSON_HEADERS + routing_headers(trace) + extra)
        finally:
            if watching:
                gone.finished = True
                self._watchers.discard(gone)
                if gone.watcher is not None:
                    gone.watcher.cancel()
            trace.latency_ms = (time.perf_counter() - start) * 1000
            engine.in_flight -= 1
            engine.finish(trace)
            _bound_caller_fields(trace)
            self.store.record(trace)
            for observe in self._observers:
                observe(trace)

    async def _scrape(self, scope: Scope, method: str, send: Any) -> None:
        """``GET /metrics``: every worker's metrics, for Prometheus."""
        try:
            if method != "GET":
                raise MethodNotAllowedError(f"Use GET for {scope['path']}.")
            if self.config.metrics.require_admin_key:
                self._admin(scope)
        except RequestError as exc:
            return await self._error(send, exc)
        assert self.metrics is not None
        accept = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"accept"), None)
        body, content_type = await self.metrics.exposition(accept)
        await send_body(send, 200, body, [(b"content-type", content_type.encode())])

    def _caller(self, scope: Scope) -> Caller:
        # Only headers a metadata signal reads are kept (traces store them); credentials
        # are read for the key check and never kept.
        headers: dict[str, str] = {}
        token = ""
        wanted = self._header_names
        for raw_name, raw_value in scope["headers"]:
            if raw_name == b"authorization" or raw_name == b"x-api-key":
                if self._auth and not token:
                    token = _token(raw_value)
            elif wanted:
                name = raw_name.decode("latin-1").lower()
                if name in wanted:
                    headers[name] = raw_value.decode("latin-1")
        if not self._auth:
            return Caller(headers=headers)
        presented = hashlib.sha256(token.encode()).digest()
        key = _find_key(self.keys, presented) if self.keys else None
        if key is not None:
            team = self.teams.get(key.team) if key.team else None
            return Caller(
                key_name=key.name,
                headers=headers,
                team=key.team,
                policy=key.policy,
                team_policy=team.policy if team is not None else None,
            )
        ring = self.key_ring
        if ring is not None:
            if not ring.trusted():  # a change may be unread: the key may have been revoked
                raise KeyStoreUnavailable("The key store cannot be read right now; retry shortly.")
            virtual = ring.find(presented)
            if virtual is not None:
                if virtual.expires_at is not None and time.time() >= virtual.expires_at:
                    raise Unauthorized("This API key has expired: ask for a new one.")
                return Caller(
                    key_name=virtual.name,
                    headers=headers,
                    team=virtual.team,
                    policy=virtual.policy,
                    team_policy=ring.team_policy(virtual.team),
                )
        raise Unauthorized(
            "Missing or unknown API key: send 'Authorization: Bearer <key>' with a key "
            "listed under server.api_keys or made with crossroads keys create."
        )

    def _admin_on(self) -> None:
        """Raises unless the admin API is on (``server.admin_key_env`` is set)."""
        if self.admin_key is None:
            raise AdminDisabled(
                "The admin API is off: set server.admin_key_env to the environment variable "
                "holding the admin key."
            )

    def _admin(self, scope: Scope) -> None:
        """Raises unless the request carries the admin key (``server.admin_key_env``)."""
        self._admin_on()
        assert self.admin_key is not None
        token = _bearer(scope)
        if not hmac.compare_digest(hashlib.sha256(token.encode()).digest(), self.admin_key):
            raise Unauthorized("Missing or wrong admin key: send 'Authorization: Bearer <key>'.")

    async def _read_body(
        self, scope: Scope, receive: Any, limit: int | None = None, setting: str | None = None
    ) -> bytes:
        """The request's body, at most ``limit`` bytes (the ``setting``; 413 beyond)."""
        setting = setting or "server.max_body_bytes"
        limit = limit or self.config.server.max_body_bytes
        # The gateway's protocol has read the body whole (and checked its framing): take it
        # without the receive message.
        read = getattr(getattr(receive, "__self__", None), "read_body", None)
        if read is not None:
            body: bytes = read()
            if len(body) > limit:
                raise too_large(len(body), limit, setting)
            return body
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise InvalidRequestError("Invalid Content-Length header.") from None
                if declared > limit:
                    raise too_large(declared, limit, setting)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise asyncio.CancelledError
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large(size, limit, setting)
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _count_tokens(self, scope: Scope, receive: Any, send: Any, method: str) -> None:
        """The Anthropic token count of a Messages body (an estimate; no model is called)."""
        handler = self.handlers["/v1/messages"]
        try:
            if method != "POST":
                raise MethodNotAllowedError(f"Use POST for {scope['path']}.")
            self._caller(scope)
            body = handler.fmt.count_tokens(await self._read_body(scope, receive))
        except RequestError as exc:
            status, payload, headers = handler.error(exc)
            return await send_body(send, status, payload, JSON_HEADERS + headers)
        await send_body(send, 200, body, JSON_HEADERS)

    async def _error(self, send: Any, exc: Exception) -> None:
        status, payload, extra = render(exc)
        hdrs = JSON_HEADERS + [(k.encode(), v.encode()) for k, v in extra.items()]
        await send_body(send, status, payload, hdrs)


GC_FIRST_THRESHOLD = 50_000  # allocations between young collections (Python's default: 700)
ERROR_CHARS = 2000  # a trace's error text at most
CLIENT_GONE = "client_disconnected"


def _bound_caller_fields(trace: Trace) -> None:
    """What the trace keeps of what the caller sent is bounded: a client's 4 MB ``user``
    field or header must not become a 4 MB trace."""
    if trace.caller is not None:
        trace.caller = recorded_caller(trace.caller)
    trace.requested_model = bounded(trace.requested_model)
    if trace.error is not None:
        trace.error = bounded(trace.error, ERROR_CHARS)


def _find_key(keys: dict[bytes, ApiKey], presented: bytes) -> ApiKey | None:
    """The configured key whose digest is ``presented`` (a key's SHA-256), comparing with
    every key's in constant time."""
    found = None
    for digest, entry in keys.items():
        if hmac.compare_digest(presented, digest):
            found = entry
    return found


def _token(raw_value: bytes) -> str:
    """The credential of an ``Authorization: Bearer <token>`` or ``x-api-key`` header value."""
    value = raw_value.decode("latin-1").strip()
    return value[7:].strip() if value[:7].lower() == "bearer " else value


def _bearer(scope: Scope) -> str:
    """The token of the request's ``Authorization: Bearer`` or ``x-api-key`` header."""
    for raw_name, raw_value in scope["headers"]:
        if raw_name == b"authorization" or raw_name == b"x-api-key":
            return _token(raw_value)
    return ""


def _admin_key(cfg: Config) -> bytes | None:
    """The SHA-256 digest of the admin key, or None when the admin API is off."""
    env = cfg.server.admin_key_env
    if env is None:
        return None
    value = os.environ.get(env)
    if not value:
        raise CrossroadsError(f"server.admin_key_env: environment variable {env} is not set")
    return hashlib.sha256(value.encode()).digest()


def _key_ring(cfg: Config) -> KeyRing | None:
    """The gateway's copy of the key store (``store.keys``), loaded; None when unset."""
    if cfg.store.keys is None:
        return None
    from crossroads.keys import open_key_store
    from crossroads.keys.ring import KeyRing

    ring = KeyRing(open_key_store(cfg.store.keys), {t.name: t.policy for t in cfg.teams})
    ring.start()
    return ring


def _api_keys(cfg: Config) -> dict[bytes, ApiKey]:
    """The configured keys by the SHA-256 digest of their value."""
    keys: dict[bytes, ApiKey] = {}
    for entry in cfg.server.api_keys:
        value = os.environ.get(entry.key_env)
        if not value:
            raise CrossroadsError(
                f"server.api_keys: environment variable {entry.key_env} (key {entry.name!r}) "
                "is not set"
            )
        keys[hashlib.sha256(value.encode()).digest()] = entry
    return keys


_ID_BATCH = 4096  # random parts fetched from the OS at once (one system call per batch)
_ids: list[str] = []


def new_trace_id(now: float) -> str:
    """24 hex digits: the time in ms, then 48 random bits (from ``os.urandom``, fetched in
    batches). Ids made later sort later, so a trace store's key index grows at its end
    instead of at random pages."""
    if not _ids:
        pool = os.urandom(6 * _ID_BATCH).hex()
        _ids.extend(pool[i : i + 12] for i in range(0, len(pool), 12))
    return f"{int(now * 1000):012x}{_ids.pop()}"


os.register_at_fork(after_in_child=_ids.clear)  # a forked worker never repeats its parent's


WATCH_AFTER_S = 0.05


class _Disconnect:
    """Whether the client went away while its request was still being served."""

    __slots__ = ("task", "receive", "start", "happened", "finished", "watcher")

    def __init__(self, receive: Any, start: float) -> None:
        # The gateway's protocol knows its task: asyncio.current_task() would cost a
        # getpid() system call per request in CPython 3.11 (get_running_loop checks it).
        self.task = serving_task(receive) or asyncio.current_task()
        self.receive = receive
        self.start = start  # perf_counter() when the request arrived
        self.happened = False
        self.finished = False
        self.watcher: asyncio.Task[None] | None = None


class _Watchers:
    """Starts a disconnect watcher for every request still running ``WATCH_AFTER_S`` after
    it arrived. One timer serves all of a worker's requests, and runs only while some are in
    flight: a request pays a dict insert and a pop, not a timer of its own."""

    def __init__(self) -> None:
        self.pending: dict[_Disconnect, None] = {}  # in arrival order
        self.timer: asyncio.TimerHandle | None = None

    def add(self, state: _Disconnect) -> None:
        self.pending[state] = None
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, self._tick)

    def discard(self, state: _Disconnect) -> None:
        self.pending.pop(state, None)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        old = time.perf_counter() - WATCH_AFTER_S
        pending = self.pending
        for state in list(pending):
            if state.start > old:
                break  # this one and those after it are younger
            del pending[state]
            state.watcher = loop.create_task(_watch_disconnect(state.receive, state))
        self.timer = loop.call_later(WATCH_AFTER_S, self._tick) if pending else None


async def _watch_disconnect(receive: Any, state: _Disconnect) -> None:
    """Cancel the request's task (and so its upstream call) if the client disconnects."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not state.finished and state.task is not None:
                state.happened = True
                state.task.cancel()
            return


def create_app(
    config: Config,
    *,
    store: TraceStore | None = None,
    upstreams: dict[str, Upstream] | None = None,
    freeze_gc: bool = False,
    config_path: str | Path | None = None,
) -> Gateway:
    """The gateway for ``config``; nothing happens until the ASGI server starts it.
    ``freeze_gc`` (for a process that only serves this app) moves everything built at
    start-up out of the cyclic garbage collector's reach. ``config_path``: the file
    ``config`` came from, read again on a reload (SIGHUP, ``POST
    /v1/crossroads/admin/reload``)."""
    return Gateway(
        config, store=store, upstreams=upstreams, freeze_gc=freeze_gc, config_path=config_path
    )


def app_from_env() -> Gateway:
    """Factory for multi-worker servers: reads the config named by ``CROSSROADS_CONFIG``."""
    from crossroads.config import load_config

    path = os.environ.get("CROSSROADS_CONFIG")
    if not path:
        raise CrossroadsError("CROSSROADS_CONFIG is not set: it must name the config file")
    app = create_app(load_config(path), freeze_gc=True, config_path=path)
    app.several_workers = True
    return app
