"""The semantic cache plan: serve a stored answer to the same (or a near-identical) request.

Precision first. An entry is found only inside its *scope*: the tenant (the caller's team,
else its API key name — never across tenants), the decision, the requested model and the
request's *shape* (every message but the last user turn, tools, response format, sampling
and output limit), all compared exactly. Inside a scope, the last user turn is looked up
exactly, then (unless ``exact_only``) by MiniLM cosine of at least ``similarity``. Entries
live ``ttl_s`` and at most ``max_entries`` are kept, in this process
(:class:`~crossroads.plans.cache_store.MemoryCacheStore`) or, when the state backend is
Redis, shared by every worker (:mod:`crossroads.plans.cache_redis`). Only complete,
non-streamed answers without tool calls are stored (a stream can be served from one). A
hit costs nothing and is recorded on the trace (``cache: hit``, the similarity in
``stages``); the encoder is loaded only when a similarity cache is configured.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

import orjson

from crossroads.config.plans import CachePlan
from crossroads.engine import EngineStream
from crossroads.formats import get_format
from crossroads.plans.cache_store import CacheStore, Entry, MemoryCacheStore, tenant_prefix
from crossroads.types import (
    Choice,
    Request,
    Response,
    RoutingRequest,
    StageCall,
    StreamEvent,
    Trace,
    Usage,
)

if TYPE_CHECKING:
    import numpy as np

    from crossroads.engine import Engine
    from crossroads.plans import Plan


class SemanticCache:
    """Runs a :class:`~crossroads.config.plans.CachePlan` in front of ``inner`` (one call
    when ``None``), its entries in ``store`` (default: in this process)."""

    kind = "cache"

    def __init__(
        self, config: CachePlan, inner: Plan | None = None, store: CacheStore | None = None
    ) -> None:
        self.config = config
        self.inner = inner
        self.store = store

    def prepare(self) -> SemanticCache:
        """Open the store (empty, in memory by default); load the encoder unless the cache
        is exact only."""
        self.store_ = self.store or MemoryCacheStore(self.config.ttl_s, self.config.max_entries)
        if not self.config.exact_only:
            from crossroads.signals.embedding import shared_embedder

            shared_embedder()
        return self

    # ------------------------------------------------------------------ serving

    async def serve(
        self, engine: Engine, request: Request, facts: RoutingRequest, trace: Trace, start: float
    ) -> Response | EngineStream:
        """A cached answer, else the inner plan's (stored when it is complete)."""
        scope = scope_key(request, facts, trace)
        text = facts.last_user_text or facts.text
        vector = None
        if request.operation == "chat" and not request.tools:
            found = await self.store_.exact(scope, text)
            similarity = 1.0
            if found is None and not self.config.exact_only:
                from crossroads.signals.embedding import shared_batcher

                vector = await shared_batcher().encode(text[:4000])
                found, similarity = await self.store_.nearest(scope, vector, self.config.similarity)
            if found is not None:
                return self._hit(found, similarity, request, trace, start)
        trace.cache = "miss"
        if self.inner is not None:
            answer = await self.inner.serve(engine, request, facts, trace, start)
        elif request.stream:
            return await engine.open_stream(request, facts, trace, start)
        else:
            answer = await engine.complete(request, facts, trace, start)
        if isinstance(answer, Response) and request.operation == "chat" and not request.tools:
            entry = self._entry(scope, text, vector, answer, trace)
            if entry is not None and await self.store_.put(entry):
                trace.cache = "store"
        return answer

    def _hit(
        self, entry: Entry, similarity: float, request: Request, trace: Trace, start: float
    ) -> Response | EngineStream:
        trace.cache, trace.plan = "hit", self.kind
        trace.model, trace.upstream = entry.model, None
        trace.ttft_ms = (time.perf_counter() - start) * 1000
        trace.stages = [
            StageCall(
                0,
                entry.model,
                "accepted",
                0.0,
                Usage(0, 0),
                0.0,
                reason="cache hit",
                score=round(similarity, 6),
            )
        ]
        trace.usage, trace.cost = Usage(0, 0), 0.0
        if request.stream:
            return CachedStream(trace, entry)
        return Response(
            f"chatcmpl-cache-{trace.trace_id}",
            entry.model,
            int(time.time()),
            [Choice(0, entry.answer, [], entry.finish_reason)],  # type: ignore[arg-type]
            Usage(0, 0),
            "cache",
        )

    # ------------------------------------------------------------------ storing

    def _entry(
        self, scope: str, text: str, vector: Any, response: Response, trace: Trace
    ) -> Entry | None:
        """What to store of a complete answer (``None``: nothing worth storing)."""
        if trace.model is None:
            return None
        if response.raw is not None and not response.choices:
            response = get_format(response.source).parse_response(response.raw, trace.model)
        if not response.choices:
            return None
        choice = response.choices[0]
        if choice.tool_calls or choice.finish_reason not in ("stop", None) or not choice.text:
            return None
        if self.config.exact_only:
            vector = None
        elif vector is None:
            return None  # only the exact path ran (a cache hit was impossible): keep it simple
        return Entry(
            scope, text, trace.model, choice.text, choice.finish_reason, time.time(), vector
        )

    async def invalidate(self, tenant: str | None = None) -> int:
        """Drop every entry (of one tenant, when given); returns how many were dropped."""
        return await self.store_.invalidate(tenant)


def tenant_of(facts: RoutingRequest) -> str:
    """Who owns a cache entry: the caller's team, else its API key name ("-" without keys)."""
    caller = facts.caller
    return f"team:{caller.team}" if caller.team else f"key:{caller.key_name or '-'}"


def scope_key(request: Request, facts: RoutingRequest, trace: Trace) -> str:
    """Tenant, decision, requested model and the request's shape, as one key."""
    shape: dict[str, Any] = {
        "messages": [_message(m) for m in request.messages[:-1]],
        "last_role": request.messages[-1].role if request.messages else None,
        "response_format": None
        if request.response_format is None
        else [request.response_format.type, request.response_format.schema],
        "sampling": [
            request.temperature,
            request.top_p,
            request.top_k,
            request.seed,
            request.stop,
            request.max_tokens,
        ],
        "operation": request.operation,
    }
    digest = hashlib.sha256(orjson.dumps(shape, default=str)).hexdigest()[:32]
    decision = trace.route.decision if trace.route is not None else "-"
    return f"{tenant_prefix(tenant_of(facts))}{decision}\x00{request.model}\x00{digest}"


def _message(m: Any) -> list[Any]:
    content = (
        m.content
        if isinstance(m.content, str)
        else [[p.type, p.text, p.url, p.data] for p in m.content]
    )
    return [m.role, content, [[c.name, c.arguments] for c in m.tool_calls], m.tool_call_id]


def precision_threshold(similarity: np.ndarray, same: np.ndarray, precision: float = 0.99) -> float:
    """The least similarity at which looked-up pairs are the same request at least
    ``precision`` of the time (``same``: 1 where a pair's cached answer is right for it), for
    calibrating ``similarity`` on labelled pairs; 1.0 when no threshold reaches it."""
    import numpy as np

    order = np.argsort(-similarity)
    hits = np.cumsum(same[order]) / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(hits >= precision)
    return float(similarity[order][ok[-1]]) if ok.size else 1.0


class CachedStream(EngineStream):
    """A cached answer as a stream of canonical events (rendered in the client's format)."""

    def __init__(self, trace: Trace, entry: Entry) -> None:  # noqa: D107 - no upstream stream
        self.trace = trace
        self.passthrough = False
        self.done = False
        self._events = [
            StreamEvent(role="assistant", text=entry.answer, model=entry.model),
            StreamEvent(finish_reason=entry.finish_reason or "stop"),  # type: ignore[arg-type]
            StreamEvent(done=True),
        ]

    async def __anext__(self) -> list[StreamEvent]:
        if self.done:
            raise StopAsyncIteration
        self.done = True
        return self._events

    async def aclose(self, ok: bool, failure: str | None = None) -> None:
        """Nothing upstream to close."""
