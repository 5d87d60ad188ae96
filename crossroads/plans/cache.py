"""The semantic cache plan: serve a stored answer to the same (or a near-identical) request.

Precision first. An entry is found only inside its *scope*: the tenant (the caller's team,
else its API key name — never across tenants), the decision, the requested model and the
request's *shape* (every message but the last user turn, tools, response format, sampling
and output limit), all compared exactly. Inside a scope, the last user turn is looked up
exactly, then (unless ``exact_only``) by MiniLM cosine of at least ``similarity``. Entries
live ``ttl_s`` and the least recently used go past ``max_entries``. Only complete,
non-streamed answers without tool calls are stored (a stream can be served from one). A
hit costs nothing and is recorded on the trace (``cache: hit``, the similarity in
``stages``); the encoder is loaded only when a similarity cache is configured.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from crossroads.config.plans import CachePlan
from crossroads.engine import EngineStream
from crossroads.formats import get_format
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


@dataclass(slots=True)
class Entry:
    """One cached answer."""

    scope: str
    text: str
    model: str
    answer: str
    finish_reason: str | None
    created: float
    vector: Any = None


class SemanticCache:
    """Runs a :class:`~crossroads.config.plans.CachePlan` in front of ``inner`` (one call
    when ``None``). One per worker process: entries are in memory."""

    kind = "cache"

    def __init__(self, config: CachePlan, inner: Plan | None = None) -> None:
        self.config = config
        self.inner = inner

    def prepare(self) -> SemanticCache:
        """Empty the cache; load the encoder unless the cache is exact only."""
        self.entries_: OrderedDict[tuple[str, str], Entry] = OrderedDict()
        self._matrices: dict[str, tuple[list[Entry], Any]] = {}
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
            found = self._exact(scope, text)
            similarity = 1.0
            if found is None and not self.config.exact_only:
                from crossroads.signals.embedding import shared_batcher

                vector = await shared_batcher().encode(text[:4000])
                found, similarity = self._nearest(scope, vector)
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
            self._store(scope, text, vector, answer, trace)
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

    # ------------------------------------------------------------------ the store

    def _exact(self, scope: str, text: str) -> Entry | None:
        entry = self.entries_.get((scope, text))
        if entry is None:
            return None
        if time.time() - entry.created > self.config.ttl_s:
            self._drop((scope, text))
            return None
        self.entries_.move_to_end((scope, text))
        return entry

    def _nearest(self, scope: str, vector: np.ndarray) -> tuple[Entry | None, float]:
        import numpy as np

        found = self._matrices.get(scope)
        if found is None:
            entries = [
                e for e in self.entries_.values() if e.scope == scope and e.vector is not None
            ]
            if not entries:
                return None, 0.0
            found = self._matrices[scope] = (entries, np.stack([e.vector for e in entries]))
        entries, matrix = found
        scores = matrix @ vector
        best = int(scores.argmax())
        score = float(scores[best])
        entry = entries[best]
        if score < self.config.similarity:
            return None, score
        if time.time() - entry.created > self.config.ttl_s:
            self._drop((entry.scope, entry.text))
            return None, score
        self.entries_.move_to_end((entry.scope, entry.text))
        return entry, score

    def _store(self, scope: str, text: str, vector: Any, response: Response, trace: Trace) -> None:
        if trace.model is None:
            return
        if response.raw is not None and not response.choices:
            response = get_format(response.source).parse_response(response.raw, trace.model)
        if not response.choices:
            return
        choice = response.choices[0]
        if choice.tool_calls or choice.finish_reason not in ("stop", None) or not choice.text:
            return
        if self.config.exact_only:
            vector = None
        elif vector is None:
            return  # only the exact path ran (a cache hit was impossible): keep it simple
        key = (scope, text)
        self._drop(key)
        self.entries_[key] = Entry(
            scope, text, trace.model, choice.text, choice.finish_reason, time.time(), vector
        )
        self._matrices.pop(scope, None)
        while len(self.entries_) > self.config.max_entries:
            self._drop(next(iter(self.entries_)))
        trace.cache = "store"

    def _drop(self, key: tuple[str, str]) -> None:
        if self.entries_.pop(key, None) is not None:
            self._matrices.pop(key[0], None)

    def invalidate(self, tenant: str | None = None) -> int:
        """Drop every entry (of one tenant, when given); returns how many were dropped."""
        keys = [
            k
            for k, e in self.entries_.items()
            if tenant is None or e.scope.startswith(_tenant_prefix(tenant))
        ]
        for key in keys:
            self._drop(key)
        return len(keys)


def tenant_of(facts: RoutingRequest) -> str:
    """Who owns a cache entry: the caller's team, else its API key name ("-" without keys)."""
    caller = facts.caller
    return f"team:{caller.team}" if caller.team else f"key:{caller.key_name or '-'}"


def _tenant_prefix(tenant: str) -> str:
    return tenant + "\x00"


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
    return f"{_tenant_prefix(tenant_of(facts))}{decision}\x00{request.model}\x00{digest}"


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
