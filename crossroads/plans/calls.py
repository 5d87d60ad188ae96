"""One model call of a plan, read into an :class:`Answer` that acceptance rules can judge,
and the answer a client reads once one is chosen.

A call goes through the dispatcher like any other (endpoint choice, retries, fallbacks to
the model's ``fallbacks``), so a plan inherits the dispatcher's failure handling. For a
stream the call is *buffered*: its frames are read (to the end, or to a prefix) and kept,
so that if the plan accepts it the client gets the upstream's own frames, and if not the
client never sees it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from crossroads.config import ModelConfig
from crossroads.dispatch.dispatcher import OpenStream
from crossroads.dispatch.sse import event_data, split_events
from crossroads.exceptions import UpstreamProtocolError, UpstreamTimeoutError
from crossroads.plans.logprobs import OPENAI, Logprobs, strip_body, strip_frames
from crossroads.tokens import count_tokens
from crossroads.types import Choice, Request, Response, StageCall, ToolCall, Trace, Usage

if TYPE_CHECKING:
    from crossroads.engine import Engine, EngineStream


@dataclass(slots=True)
class Answer:
    """What one call answered, as the rules see it. ``body`` (a complete answer) or
    ``stream`` (a buffered stream: ``stream.head`` holds every batch read) is what the
    client gets if the answer is served; ``complete`` is false for a stream read only to
    a prefix."""

    stage: int
    model: ModelConfig
    fmt: Any
    upstream: str
    latency_ms: float
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    logprobs: Logprobs | None = None
    body: bytes | None = None
    parsed: Response | None = None
    stream: OpenStream | None = None
    complete: bool = True
    injected: bool = False  # logprobs the client did not ask for: taken out before it reads

    async def release(self) -> None:
        """Close a buffered stream that will not be served (the endpoint did its job)."""
        if self.stream is not None:
            stream, self.stream = self.stream, None
            await stream.aclose(True)


def client_wants_logprobs(request: Request) -> bool:
    """Whether the client itself asked for logprobs (then they are its to read)."""
    wire = request.wire
    return bool(wire and wire.get("logprobs"))


def variant(request: Request, *, logprobs: int | None, temperature: float | None) -> Request:
    """The request one call of a plan sends: logprobs asked for (``logprobs`` alternatives
    per token), sampled at ``temperature``. The same request when neither changes."""
    if logprobs is None and temperature is None:
        return request
    changes: dict[str, Any] = {}
    wire = request.wire
    if logprobs is not None and not client_wants_logprobs(request):
        changes["logprobs"] = logprobs
        if wire is not None and request.source == "openai_chat":
            wire = {**wire, "logprobs": True, "top_logprobs": logprobs}
        elif wire is not None and request.source == "openai_completions":
            wire = {**wire, "logprobs": min(logprobs, 5)}
    if temperature is not None:
        changes["temperature"] = temperature
        if wire is not None:
            wire = {**wire, "temperature": temperature}
    return replace(request, wire=wire, **changes)


async def call(
    engine: Engine,
    stage: int,
    model: str,
    request: Request,
    trace: Trace,
    prefix: str,
    *,
    prefix_tokens: int | None = None,
) -> Answer:
    """Call ``model`` (then its fallbacks) for ``request``; a stream is buffered to its end,
    or to about ``prefix_tokens`` tokens of output."""
    dispatcher = engine.dispatcher
    chain = [model, *dispatcher.models_[model].fallbacks]
    injected = request.logprobs is not None  # only a plan sets it (see variant)
    started = time.perf_counter()
    if not request.stream:
        completion, m, fmt = await dispatcher.complete(chain, request, trace, prefix)
        parsed = fmt.parse_response(completion.body, m.name)
        choice = parsed.choices[0] if parsed.choices else Choice()
        logprobs = None
        if fmt.NAME in OPENAI:
            logprobs = Logprobs()
            logprobs.add_body(completion.body)
        return Answer(
            stage,
            m,
            fmt,
            trace.attempts[-1].upstream,
            (time.perf_counter() - started) * 1000,
            choice.text or "",
            list(choice.tool_calls),
            choice.finish_reason,
            completion.usage or parsed.usage,
            logprobs,
            body=completion.body,
            parsed=parsed,
            injected=injected,
        )
    opened = await dispatcher.open_stream(chain, request, trace, prefix)
    answer = Answer(
        stage, opened.model, opened.fmt, opened.endpoint.key, 0.0, stream=opened, injected=injected
    )
    try:
        async with asyncio.timeout(dispatcher.config.dispatch.deadline_s):
            await _buffer(answer, opened, prefix_tokens)
    except TimeoutError:
        await opened.aclose(False, "timeout")
        answer.stream = None
        raise UpstreamTimeoutError(
            f"upstream {opened.endpoint.upstream.name!r} did not finish the stream within "
            f"dispatch.deadline_s ({dispatcher.config.dispatch.deadline_s:g} s)",
            upstream=opened.endpoint.upstream.name,
        ) from None
    except BaseException as exc:
        from crossroads.dispatch.errors import failure_category

        await opened.aclose(
            False, None if isinstance(exc, asyncio.CancelledError) else failure_category(exc)
        )
        answer.stream = None
        raise
    answer.latency_ms = (time.perf_counter() - started) * 1000
    return answer


async def _buffer(answer: Answer, opened: OpenStream, prefix_tokens: int | None) -> None:
    """Read ``opened`` into ``answer`` (text, tool calls, finish, usage, logprobs)."""
    fmt = opened.fmt
    decode = fmt.stream_decoder(opened.endpoint.upstream.name)
    logprobs = Logprobs() if fmt.NAME in OPENAI else None
    batches = list(opened.head)
    pieces: list[str] = []
    calls: dict[int, ToolCall] = {}
    done = False
    chars_wanted = None if prefix_tokens is None else prefix_tokens * 4  # ~4 chars a token

    def take(batch: bytes) -> bool:
        for frame in split_events(batch):
            data = event_data(frame)
            if data is None:
                continue
            event = decode(frame, data)
            if logprobs is not None:
                logprobs.add_chunk(data)
            if event.text:
                pieces.append(event.text)
            for delta in event.tool_calls or ():
                call_ = calls.get(delta.index)
                if call_ is None:
                    call_ = calls[delta.index] = ToolCall(delta.id or "", delta.name or "", "")
                call_.arguments += delta.arguments
                if delta.name and not call_.name:
                    call_.name = delta.name
            if event.finish_reason:
                answer.finish_reason = event.finish_reason
            if event.usage is not None:
                answer.usage = event.usage
            if event.done:
                return True
        return False

    for head in batches:
        done = take(head) or done
    while not done:
        if chars_wanted is not None and sum(map(len, pieces)) >= chars_wanted:
            break
        batch = await anext(opened.rest, None)
        if batch is None:
            name = opened.endpoint.upstream.name
            raise UpstreamProtocolError(
                f"upstream {name!r} ended the stream without {fmt.LAST_EVENT}: the answer "
                "is incomplete",
                upstream=name,
            )
        batches.append(batch)
        done = take(batch)
    opened.head = batches
    answer.text = "".join(pieces)
    answer.tool_calls = [calls[i] for i in sorted(calls)]
    answer.logprobs = logprobs
    answer.complete = done


def estimated_usage(answer_text: str, prompt_tokens: int) -> Usage:
    """The usage of a call that was cut short: the prompt was sent, the text so far made."""
    return Usage(prompt_tokens, count_tokens(answer_text), estimated=True)


def record(
    trace: Trace, answer: Answer, verdict: str, reason: str | None, score: float | None
) -> StageCall:
    """Put one answered call on the trace."""
    stage = StageCall(
        answer.stage,
        answer.model.name,
        verdict,  # type: ignore[arg-type]
        round(answer.latency_ms, 3),
        answer.usage if answer.complete or verdict != "accepted" else None,
        reason=reason,
        score=None if score is None else round(score, 6),
        upstream=answer.upstream,
    )
    if stage.usage is None and verdict != "accepted" and trace.route is not None:
        stage.usage = estimated_usage(answer.text, trace.route.prompt_tokens_estimate)
    assert trace.stages is not None
    trace.stages.append(stage)
    return stage


def record_failure(
    trace: Trace, stage: int, model: str, exc: BaseException, started: float
) -> None:
    """Put a call that failed (or was cancelled) on the trace."""
    assert trace.stages is not None
    cancelled = isinstance(exc, asyncio.CancelledError)
    usage = None
    if cancelled and trace.route is not None:  # the prompt went out: count it
        usage = Usage(trace.route.prompt_tokens_estimate, 0, estimated=True)
    trace.stages.append(
        StageCall(
            stage,
            model,
            "cancelled" if cancelled else "error",
            round((time.perf_counter() - started) * 1000, 3),
            usage,
            reason="cancelled before it answered (another branch won, or the client left)"
            if cancelled
            else f"{type(exc).__name__}: {exc}"[:300],
        )
    )


def deliver(
    engine: Engine, answer: Answer, request: Request, trace: Trace, start: float
) -> Response | EngineStream:
    """What the client reads of the served ``answer``, the trace naming its model. A complete
    answer is settled here; a stream settles when it ends."""
    from crossroads.engine import EngineStream

    trace.model, trace.upstream = answer.model.name, answer.upstream
    trace.ttft_ms = (time.perf_counter() - start) * 1000
    fmt = answer.fmt
    if answer.stream is not None:
        stream, answer.stream = answer.stream, None
        if answer.injected and fmt.NAME in OPENAI:
            stream.head = [strip_frames(b) for b in stream.head]
            stream.rest = _stripped(stream.rest)
        return EngineStream(engine, stream, trace, start, request.source == fmt.NAME)
    assert answer.body is not None
    if request.source == fmt.NAME:
        body = strip_body(answer.body) if answer.injected else answer.body
        response = Response("", None, 0, usage=answer.usage, source=fmt.NAME, raw=body)
    else:
        response = answer.parsed or fmt.parse_response(answer.body, answer.model.name)
    usage = answer.usage
    if usage is None and trace.route is not None:  # the other calls are paid for all the same
        usage = estimated_usage(answer.text, trace.route.prompt_tokens_estimate)
    engine.settle(trace, answer.model, usage)
    return response


async def _stripped(rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for batch in rest:
            yield strip_frames(batch)
    finally:
        await rest.aclose()  # type: ignore[attr-defined]
