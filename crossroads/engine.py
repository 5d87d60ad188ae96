"""The request engine: ``route -> plan -> dispatch -> settle``, whatever the wire format.

A handler parses a body into a canonical :class:`~crossroads.types.Request`, and the engine
does the rest: the pipeline routes it, the plan says how to call (one call today; a cascade,
a fan-out or a cache lookup are other plans), the dispatcher calls the upstream, and
:meth:`Engine.settle` records usage and actual cost on the trace, once, for answers and
streams alike. Each upstream names its wire format per operation; the dispatcher encodes
the request in it and the engine reads the answer with the same format module, so any
inbound format reaches any upstream kind. Where the client speaks the upstream's format the
answer (or the stream) passes through as the upstream sent it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from crossroads.config import ModelConfig
from crossroads.cost import actual_cost
from crossroads.dispatch.dispatcher import Dispatcher, OpenStream
from crossroads.dispatch.sse import event_data, marked_events, split_events
from crossroads.exceptions import UpstreamProtocolError
from crossroads.pipeline import Pipeline
from crossroads.plans.settle import settle_stages
from crossroads.prompts import routing_request
from crossroads.redact import bounded, scrub
from crossroads.tokens import count_tokens
from crossroads.types import (
    Caller,
    Request,
    Response,
    RoutingRequest,
    StreamEvent,
    Trace,
    Usage,
)

if TYPE_CHECKING:
    from crossroads.limits import Limits
    from crossroads.plans import Plan


PROMPT_CHARS = 8000  # of a prompt a trace keeps (store.prompts)


class Engine:
    """Serves canonical requests under one config's pipeline and dispatcher. ``plans``: the
    multi-call plans (:mod:`crossroads.plans`) by decision name; a decision without one
    makes one call, trying the models of the dispatcher's chain in order."""

    def __init__(
        self,
        pipeline: Pipeline,
        dispatcher: Dispatcher,
        prefix_chars: int,
        plans: dict[str, Plan] | None = None,
        limits: Limits | None = None,
        keep_prompts: bool = False,
    ) -> None:
        self.pipeline = pipeline
        self.dispatcher = dispatcher
        self.prefix_chars = prefix_chars
        self.plans = plans or None
        self.limits = limits
        self.keep_prompts = keep_prompts  # store.prompts: the trace keeps the prompt
        self.in_flight = 0  # requests the gateway serves on this engine now

    async def serve(
        self, request: Request, caller: Caller, trace: Trace, start: float
    ) -> Response | EngineStream:
        """Route ``request`` and answer it: a complete :class:`Response`, or for a stream an
        :class:`EngineStream` whose first content has arrived (``start``: when the request
        arrived). Both are settled on ``trace``."""
        facts = await self.route(request, caller, trace)
        if self.plans is not None:
            plan = self.plans.get(trace.route.decision)  # type: ignore[union-attr]
            if plan is not None:
                return await plan.serve(self, request, facts, trace, start)
        if request.stream:
            return await self.open_stream(request, facts, trace, start)
        return await self.complete(request, facts, trace, start)

    async def route(self, request: Request, caller: Caller, trace: Trace) -> RoutingRequest:
        """Route ``request``; the route is on the trace, the signals' view is returned.
        A caller with a policy is checked before routing and admitted after it (rate
        windows counted, the estimated cost held against its budgets)."""
        facts = routing_request(request, request.operation, caller)
        facts.trace_id = trace.trace_id
        if self.keep_prompts:
            trace.prompt = bounded(scrub(facts.last_user_text or facts.text), PROMPT_CHARS)
        limits = self.limits
        free = caller.policy is None and caller.team_policy is None  # governs() would say no
        if limits is None or free or not limits.governs(caller):
            trace.route = await self.pipeline.route(facts, request.model)
            return facts
        await limits.before_route(request, facts)
        trace.route = await self.pipeline.route(facts, request.model)
        await limits.admit(facts, trace)
        return facts

    async def observe(self, decision: str, trace_id: str, reward: float) -> bool:
        """Feedback on a routed request: ``reward`` is its quality in [0, 1]. The decision's
        online selector learns from it; False when no selector of ``decision`` learns or the
        request is unknown to it (never routed by it, or its feedback window expired)."""
        for selector in self.pipeline.selectors(decision):
            observe = getattr(selector, "observe", None)
            if observe is not None:
                return bool(await observe(trace_id, reward))
        return False

    async def complete(
        self, request: Request, facts: RoutingRequest, trace: Trace, start: float
    ) -> Response:
        """A complete answer, settled on ``trace`` (``start``: when the request arrived)."""
        assert trace.route is not None
        completion, model, fmt = await self.dispatcher.complete(
            self.dispatcher.chain(trace.route), request, trace, facts.text[: self.prefix_chars]
        )
        trace.model, trace.upstream = model.name, trace.attempts[-1].upstream
        trace.ttft_ms = (time.perf_counter() - start) * 1000
        # Positional (id, model, created, choices, usage, source, raw): keywords cost more.
        response = Response("", None, 0, [], completion.usage, fmt.NAME, completion.body)
        if request.source != fmt.NAME:  # the client reads another format: read the answer
            response = fmt.parse_response(completion.body, model.name)
        self.settle(trace, model, response.usage)
        return response

    async def open_stream(
        self, request: Request, facts: RoutingRequest, trace: Trace, start: float
    ) -> EngineStream:
        """A stream whose first content has arrived (failures before it fall back)."""
        assert trace.route is not None
        stream = await self.dispatcher.open_stream(
            self.dispatcher.chain(trace.route), request, trace, facts.text[: self.prefix_chars]
        )
        trace.model, trace.upstream = stream.model.name, stream.endpoint.key
        trace.ttft_ms = (time.perf_counter() - start) * 1000
        return EngineStream(self, stream, trace, start, request.source == stream.fmt.NAME)

    def settle(self, trace: Trace, model: ModelConfig, usage: Usage | None) -> None:
        """Usage and actual cost of the answer, on the trace: the one place both are set."""
        if usage is None:
            return
        trace.usage = usage
        trace.cost = actual_cost(model, usage)
        if trace.stages is not None:  # a multi-call plan: every call is paid for
            settle_stages(trace, self.dispatcher.models_, usage)

    def finish(self, trace: Trace) -> None:
        """The request is over, however it ended: settle its reservation (the actual cost
        on the trace, nothing if no answer came). A randomised selection whose model did
        not answer (an error, a fallback) is forgotten: feedback on it would be about
        another model."""
        if trace.reservation is not None and self.limits is not None:
            self.limits.settle(trace)
        route = trace.route
        if route is not None and route.propensity is not None and trace.model != route.model:
            for selector in self.pipeline.selectors(route.decision):
                forget = getattr(selector, "forget", None)
                if forget is not None:
                    forget(trace.trace_id)


class EngineStream:
    """An upstream stream as canonical events; settles when the upstream's stream ends.

    ``passthrough``: the client speaks the upstream's format, so it reads the upstream's
    bytes as they are, from :meth:`forward`. Then only the events holding one of the
    format's ``STREAM_MARKS`` (literals: usage, the end, errors) are decoded; the rest is
    forwarded unread, and decoded later only if the upstream never reports usage and the
    output has to be counted."""

    def __init__(
        self, engine: Engine, stream: OpenStream, trace: Trace, start: float, passthrough: bool
    ) -> None:
        self.engine = engine
        self.fmt = stream.fmt
        self.stream = stream
        self.trace = trace
        self.start = start
        self.passthrough = passthrough
        self.model = stream.model
        self.usage: Usage | None = None
        self.pieces: list[str] = []
        self.unread: list[bytes] = []  # batches forwarded unread, until usage arrives
        self.done = False
        self._head = stream.head[::-1]  # popped from the end
        self._decode = self.fmt.stream_decoder(stream.endpoint.upstream.name)
        self._marks: tuple[bytes, ...] = self.fmt.STREAM_MARKS if passthrough else ()

    async def forward(self, usage: bool) -> bytes:
        """For a client of the upstream's format (``passthrough``): what to write of the next
        upstream read, as it came, less the usage-only events unless ``usage``, and nothing
        after the last event; ``done`` is set with the last. Raises if the stream ends early
        or fails."""
        if self._head:
            batch = self._head.pop()
        else:  # (not a method of its own: this runs once per upstream read)
            try:
                batch = await self.stream.rest.__anext__()
            except StopAsyncIteration:
                raise self._cut_short() from None
        i = 0
        for mark in self._marks:
            # partition, not find: no argument parsing, 2/3 of find's cost for the usual
            # absent mark; not ``in``: CPython 3.11 raises a TypeError inside it
            head, found, _ = batch.partition(mark)
            if found:
                return self._forward_marked(batch, self._marks[i:], len(head), usage)
            i += 1  # noqa: SIM113 (enumerate: a call and a tuple more per batch)
        if self.usage is None:
            self.unread.append(batch)
        return batch

    def _forward_marked(
        self, batch: bytes, marks: tuple[bytes, ...], first: int, usage: bool
    ) -> bytes:
        """:meth:`forward` of a batch holding ``marks[0]`` at ``first`` (and none before it
        in the format's marks): only its marked events are decoded."""
        decode = self._decode
        out = []
        at = 0  # written up to here
        for start, end in marked_events(batch, marks, first):
            frame = batch[start:end]
            data = event_data(frame)
            if data is None:
                continue  # a comment: forwarded with the bytes around it
            event = decode(frame, data)
            if event.usage is not None:
                self.usage = event.usage
            if event.done:
                self.done = True
                batch = batch[:end]
                break
            if event.usage_only and not usage:
                out.append(batch[at:start])
                at = end
        if self.usage is None:  # decoded later, in order, if the output has to be counted
            self.unread.append(batch)
        if self.done:
            self._settle()
        if not out:
            return batch
        out.append(batch[at:])
        return b"".join(out)

    def batches(self) -> EngineStream:
        """Events in batches, one per upstream read (``async for``); raises if the stream
        ends early. An iterator object, not an async generator: no per-stream generator
        bookkeeping on the event loop."""
        return self

    def __aiter__(self) -> EngineStream:
        return self

    def _cut_short(self) -> UpstreamProtocolError:
        name = self.stream.endpoint.upstream.name
        return UpstreamProtocolError(
            f"upstream {name!r} ended the stream without {self.fmt.LAST_EVENT}: "
            "the answer is incomplete",
            upstream=name,
        )

    async def __anext__(self) -> list[StreamEvent]:
        while not self.done:
            if self._head:
                batch = self._head.pop()
            else:
                try:
                    batch = await self.stream.rest.__anext__()
                except StopAsyncIteration:
                    raise self._cut_short() from None
            events = self._decoded(batch)
            if self.done:
                self._settle()  # before the last batch: its reader renders the final usage
            if events:
                return events
        raise StopAsyncIteration

    def _decoded(self, batch: bytes) -> list[StreamEvent]:
        events = []
        decode = self._decode
        for frame in split_events(batch):
            data = event_data(frame)
            if data is None:
                continue
            event = decode(frame, data)
            events.append(event)
            if event.usage is not None:
                self.usage = event.usage
            elif self.usage is None:
                if event.text:
                    self.pieces.append(event.text)
                for call in event.tool_calls or ():
                    self.pieces.append(call.arguments)
            if event.done:
                self.done = True
                break
        return events

    def _settle(self) -> None:
        usage = self.usage
        trace = self.trace
        if usage is None and trace.route is not None:
            usage = Usage(
                trace.route.prompt_tokens_estimate,
                count_tokens("".join(self.pieces) + self._unread_text()),
                estimated=True,
            )
        self.unread = []
        self.engine.settle(trace, self.model, usage)

    def _unread_text(self) -> str:
        """The output text of the batches forwarded unread (decoded with a fresh decoder:
        they hold deltas only)."""
        if not self.unread:
            return ""
        decode = self.fmt.stream_decoder(self.stream.endpoint.upstream.name)
        pieces = []
        for batch in self.unread:
            for frame in split_events(batch):
                data = event_data(frame)
                if data is not None:
                    event = decode(frame, data)
                    if event.text:
                        pieces.append(event.text)
                    for call in event.tool_calls or ():
                        pieces.append(call.arguments)
        return "".join(pieces)

    async def aclose(self, ok: bool, failure: str | None = None) -> None:
        """End the upstream call and record its outcome on the endpoint (``failure``: the
        failure's category)."""
        if not self.done and self.trace.cost is None:
            self._settle()  # cut short (client gone, upstream failed): what was streamed
        await self.stream.aclose(ok, failure)
        trace = self.trace
        if ok and trace.usage and trace.usage.completion_tokens > 1 and trace.ttft_ms is not None:
            rest_ms = (time.perf_counter() - self.start) * 1000 - trace.ttft_ms
            self.stream.endpoint.observe_tpot(rest_ms / (trace.usage.completion_tokens - 1))
