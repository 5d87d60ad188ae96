"""Dispatch a routed request: pick an endpoint, retry, fail over to other endpoints of the
model, then to the next compatible model, with circuit breakers and one deadline.

The chain of models is the chosen one, then its explicit ``fallbacks``, then (with
``dispatch.fallback_across_models``) the decision's other eligible candidates in order.
A request that fails for a reason another endpoint would not fix (the upstream says the
request itself is bad) is not retried. When every endpoint of every model in the chain has
an open circuit, the answer is an immediate 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from crossroads.config import Config, ModelConfig
from crossroads.dispatch.balancing import choose
from crossroads.dispatch.base import Completion, Upstream
from crossroads.dispatch.deadline import Deadline
from crossroads.dispatch.endpoints import EndpointState, build_endpoints
from crossroads.dispatch.errors import failure_category
from crossroads.dispatch.retries import RetryBudget, backoff_s, is_retryable
from crossroads.dispatch.sse import event_data
from crossroads.exceptions import (
    CrossroadsError,
    RequestEncodingError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from crossroads.formats import get_format
from crossroads.observe.context import enter_attempt
from crossroads.types import Attempt, Operation, Request, Route, Trace

T = TypeVar("T")


class AllEndpointsDownError(UpstreamError):
    """503: every endpoint of every model that could serve the request has an open circuit."""

    status = 503
    code = "all_endpoints_down"
    retryable = False


@dataclass(slots=True)
class OpenStream:
    """A stream whose first content has arrived: forward ``head``, then ``rest``; both are
    in wire format ``fmt`` (a :mod:`crossroads.formats` module)."""

    head: list[bytes]
    rest: AsyncIterator[bytes]
    endpoint: EndpointState
    model: ModelConfig
    started: float
    fmt: Any

    async def aclose(self, ok: bool, error: str | None = None) -> None:
        """End the stream: close the upstream call, release the endpoint, record the outcome
        (``error``: the failure's category, see :func:`failure_category`)."""
        try:
            await self.rest.aclose()  # type: ignore[attr-defined]
        finally:
            self.endpoint.in_flight -= 1
            if ok:
                self.endpoint.breaker.success()
            elif error is not None:
                self.endpoint.failed += 1
                self.endpoint.breaker.failure(error)
            else:  # the client left: no verdict on the endpoint
                self.endpoint.breaker.release_probe()


class Dispatcher:
    """Owns endpoint state for every model; one per worker process."""

    def __init__(self, config: Config, upstreams: dict[str, Upstream]) -> None:
        self.config = config
        self.upstreams = upstreams

    def prepare(self) -> Dispatcher:
        """Build endpoint state (once, at start-up)."""
        cfg = self.config
        self.models_: dict[str, ModelConfig] = {m.name: m for m in cfg.models}
        self.deployments_: dict[str, EndpointState] = {}
        self.endpoints_: dict[str, list[EndpointState]] = {
            m.name: build_endpoints(
                m.name, m.deployments, self.upstreams, cfg.dispatch.breaker, self.deployments_
            )
            for m in cfg.models
        }
        self.budget = RetryBudget(cfg.dispatch.retries)
        # Read on every request: plain values, not the config models' attributes (pydantic's
        # attribute hook costs several times a plain read).
        self._fallbacks = {m.name: tuple(m.fallbacks) for m in cfg.models}
        self._balancing = {m.name: m.balancing for m in cfg.models}
        self._dispatch = dcfg = cfg.dispatch
        self._across = dcfg.fallback_across_models
        self._deadline_s = dcfg.deadline_s
        self._max_attempts = dcfg.retries.max_attempts
        self._ttft_slo_ms = dcfg.ttft_slo_ms
        otel = cfg.opentelemetry
        # With tracing on, each attempt gets a span id, sent upstream in ``traceparent``.
        self._sample_ratio = otel.sample_ratio if otel.enabled and otel.propagate else None
        return self

    # ------------------------------------------------------------------ what selection sees

    def unavailable(self, model: str) -> str | None:
        """Why ``model`` cannot take a request now (every endpoint open or saturated), or None."""
        endpoints = self.endpoints_[model]
        for e in endpoints:
            if e.breaker.available() and not e.saturated:
                return None
        if all(not e.breaker.available() for e in endpoints):
            return "unavailable: circuit open on " + ", ".join(e.key for e in endpoints)
        return "unavailable: every endpoint at max_concurrency"

    def chain(self, route: Route) -> list[str]:
        """Models to try, in order."""
        order = [route.model, *self._fallbacks[route.model]]
        if self._across:
            order += [
                c.model
                for c in route.candidates
                if c.eligible or (c.reason or "").startswith("unavailable")
            ]
        return list(dict.fromkeys(order))

    def snapshot(self) -> list[dict[str, object]]:
        """Every endpoint's live state."""
        return [e.snapshot() for e in self.deployments_.values()]

    # ------------------------------------------------------------------ calls

    async def complete(
        self, chain: list[str], request: Request, trace: Trace, prefix: str
    ) -> tuple[Completion, ModelConfig, Any]:
        """A non-streamed answer from the first model/endpoint of ``chain`` that gives one,
        the model, and the wire format the answer is in."""
        bodies: dict[tuple[str, str, int | None], dict[str, Any]] = {}
        operation = request.operation

        async def call(
            e: EndpointState, m: ModelConfig, within: float | None
        ) -> tuple[Completion, Any]:
            fmt = wire_format(e, operation)
            body = upstream_body(request, fmt, e, m, bodies)
            if within is None:
                return await e.upstream.complete(operation, body), fmt
            return await e.upstream.complete(operation, body, within=within), fmt

        (result, fmt), e, m = await self._attempt(chain, call, trace, prefix, keep_open=False)
        return result, m, fmt

    async def open_stream(
        self, chain: list[str], request: Request, trace: Trace, prefix: str
    ) -> OpenStream:
        """A stream whose first event has arrived; failures before it fall back transparently."""
        bodies: dict[tuple[str, str, int | None], dict[str, Any]] = {}
        operation = request.operation

        async def call(e: EndpointState, m: ModelConfig, within: None) -> OpenStream:
            fmt = wire_format(e, operation)
            events = e.upstream.stream(operation, upstream_body(request, fmt, e, m, bodies))
            head: list[bytes] = []
            try:
                # Hold back events until one carries content: a failure before it is
                # invisible to the client, so it can fall back transparently.
                decode = fmt.stream_decoder(e.upstream.name)
                async for batch in events:
                    head.append(batch)
                    if _any_content(batch, decode):
                        break
                else:
                    raise UpstreamProtocolError(
                        f"upstream {e.upstream.name!r} closed the stream before any content",
                        upstream=e.upstream.name,
                    )
            except BaseException:
                await events.aclose()  # type: ignore[attr-defined]
                raise
            return OpenStream(head, events, e, m, time.perf_counter(), fmt)

        stream, _, _ = await self._attempt(chain, call, trace, prefix, keep_open=True)
        return stream

    async def _attempt(
        self,
        chain: list[str],
        call: Callable[[EndpointState, ModelConfig, float | None], Awaitable[T]],
        trace: Trace,
        prefix: str,
        keep_open: bool,
    ) -> tuple[T, EndpointState, ModelConfig]:
        dcfg = self._dispatch
        deadline = time.monotonic() + self._deadline_s
        last: BaseException | None = None
        made = 0  # attempts so far: every one after the first is a retry, held to the budget
        starved = False
        self.budget.request()
        for name in chain:
            if starved:
                break
            model = self.models_[name]
            endpoints = self.endpoints_[name]
            balancing = self._balancing[name]
            tries: dict[str, int] = {}
            for _ in range(self._max_attempts):
                ready = [e for e in endpoints if e.breaker.available()]
                if not ready:
                    break
                fresh = ([e for e in ready if e.key not in tries] or ready) if tries else ready
                pool = [e for e in fresh if not e.saturated] or fresh
                e = choose(balancing, pool, prefix, self._ttft_slo_ms)
                if made and not self.budget.try_retry():
                    starved = True
                    break
                if e.key in tries:  # every ready endpoint was tried: back off before again
                    retry_after = getattr(last, "retry_after", None)
                    if retry_after is not None and retry_after > dcfg.retries.max_retry_after_s:
                        break  # too long to wait here: next model, or the client gets 429
                    wait = backoff_s(tries[e.key], dcfg.retries, retry_after)
                    if time.monotonic() + wait >= deadline:
                        break
                    await asyncio.sleep(wait)
                if not e.breaker.acquire():
                    continue
                made += 1
                tries[e.key] = tries.get(e.key, 0) + 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise UpstreamTimeoutError(
                        f"no answer within dispatch.deadline_s ({dcfg.deadline_s:g} s) after "
                        f"{len(trace.attempts)} attempts",
                        upstream=e.upstream.name,
                    )
                e.in_flight += 1
                span_id = None
                if self._sample_ratio is not None:
                    span_id = enter_attempt(trace, self._sample_ratio)
                start = time.perf_counter()
                try:
                    if left >= e.total_timeout_s:  # the upstream's own total timeout ends first
                        result = await call(e, model, None)
                    elif e.deadlines and not keep_open:  # its own timer ends it then
                        result = await call(e, model, left)
                    else:  # a stream's deadline covers its opening only: a timer of ours
                        async with Deadline(left):
                            result = await call(e, model, None)
                except asyncio.CancelledError:
                    e.in_flight -= 1
                    e.breaker.release_probe()
                    raise
                except BaseException as exc:
                    e.in_flight -= 1
                    err = _as_upstream_error(exc, e, left)
                    _record(trace, name, e, start, err, span_id)
                    if not isinstance(err, UpstreamError):
                        # Not the endpoint's failure: the request could not be sent (the
                        # client's 400) or we failed. No verdict, no retry, no fallback.
                        e.breaker.release_probe()
                        raise err from None
                    if not is_retryable(err):
                        e.breaker.success()  # the endpoint answered; the request was at fault
                        raise err from None
                    e.failed += 1
                    e.breaker.failure(failure_category(err))
                    last = err
                    continue
                ms = (time.perf_counter() - start) * 1000
                e.observe_ttft(ms)
                e.served += 1
                _record(trace, name, e, start, None, span_id)
                if keep_open:
                    e.breaker.confirm()
                else:
                    e.in_flight -= 1
                    e.breaker.success()
                return result, e, model
        if last is None:
            raise self._all_down(chain)
        if isinstance(last, CrossroadsError) and (len(trace.attempts) > 1 or starved):
            tried = ", ".join(dict.fromkeys(a.upstream for a in trace.attempts))
            n = len(trace.attempts)
            note = f"after {n} attempt{'s' if n > 1 else ''} on {tried}"
            if starved:
                note += "; no further retry: dispatch.retries budget exhausted"
            last.args = (f"{last} ({note})",)
            if isinstance(last, UpstreamError):
                last.message = last.args[0]
        raise last

    def _all_down(self, chain: list[str]) -> AllEndpointsDownError:
        endpoints = list(dict.fromkeys(e for name in chain for e in self.endpoints_[name]))
        wait = min((e.breaker.retry_after() for e in endpoints), default=1.0)
        # Breaker reasons are failure categories, never another request's error text.
        down = "; ".join(f"{e.key}: {e.breaker.reason or e.breaker.state}" for e in endpoints)
        message = (
            f"Every endpoint that could serve this request is down ({down}). Retry in {wait:.1f} s."
        )
        return AllEndpointsDownError(
            message, status=503, retry_after=max(1.0, round(wait, 1)), public=message
        )


def wire_format(e: EndpointState, operation: Operation) -> Any:
    """The format module endpoint ``e`` speaks for ``operation``; a 400 if it has none."""
    # An upstream that does not say (a duck-typed plugin) speaks OpenAI's formats.
    name = getattr(e.upstream, "formats", Upstream.formats).get(operation)
    if name is None:
        message = (
            f"upstream {e.upstream.name!r} does not serve {operation} requests: route this "
            f"model's {operation} requests elsewhere"
        )
        err = UpstreamStatusError(message, upstream=e.upstream.name, status=400, public=message)
        err.retryable = False
        raise err
    return get_format(name)


def upstream_body(
    request: Request,
    fmt: Any,
    e: EndpointState,
    m: ModelConfig,
    bodies: dict[tuple[str, str, int | None], dict[str, Any]],
) -> dict[str, Any]:
    """The body for one endpoint, in its format: its model id, output capped at the model's
    ``max_output_tokens``. Encoded once per (format, model id, cap) of a request."""
    cap = m.max_output_tokens
    key = (fmt.NAME, e.upstream_model, cap)
    body = bodies.get(key)
    if body is None:
        try:
            body = fmt.encode_request(request, e.upstream_model, cap)
        except (TypeError, ValueError, RecursionError) as exc:  # orjson's encode errors too
            raise RequestEncodingError(
                f"The request cannot be encoded for upstream {e.upstream.name!r} "
                f"({type(exc).__name__}: {exc})."
            ) from None
        bodies[key] = body
    return body


def _any_content(batch: bytes, decode: Callable[[bytes, bytes], Any]) -> bool:
    """Whether a batch of events holds something the client would see (text, tool call,
    finish reason, usage, the end), checking each event is well formed up to the first that
    does (events are cut from the batch one at a time: it may hold the whole stream)."""
    at, size = 0, len(batch)
    while at < size:
        end = batch.find(b"\n\n", at)
        end = size if end == -1 else end + 2
        frame = batch if end == size and not at else batch[at:end]
        at = end
        data = event_data(frame)
        if data is None:
            continue
        event = decode(frame, data)
        if event.done or event.text or event.tool_calls or event.finish_reason or event.usage:
            return True
    return False


def _as_upstream_error(exc: BaseException, e: EndpointState, left: float) -> BaseException:
    if isinstance(exc, TimeoutError):
        return UpstreamTimeoutError(
            f"upstream {e.upstream.name!r} did not answer within the remaining deadline "
            f"({left:.1f} s)",
            upstream=e.upstream.name,
        )
    return exc


def _record(
    trace: Trace,
    model: str,
    e: EndpointState,
    start: float,
    error: BaseException | None,
    span_id: str | None,
) -> None:
    latency_ms = (time.perf_counter() - start) * 1000
    attempt = Attempt(  # positional, in field order: keywords cost more
        model,
        e.key,  # upstream
        "ok",
        round(latency_ms, 3),
        None,  # error
        None,  # status
        round((time.time() - trace.created_at) * 1000 - latency_ms, 3),  # at_ms
        None,  # category
        span_id,
    )
    if error is not None:
        attempt.outcome = "error"
        attempt.error = f"{type(error).__name__}: {error}"
        attempt.status = getattr(error, "upstream_status", getattr(error, "status", None))
        attempt.category = failure_category(error)
    trace.attempts.append(attempt)
