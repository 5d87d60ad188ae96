"""The cascade plan: cheap stages first, escalate when their answer is rejected.

Each stage but the last calls its models in parallel (each ``samples`` times), judges the
answers with its acceptance rules, and serves the chosen one or moves on. The last stage
makes one call (its models in order, as a fallback chain) and is served as it comes: for
a stream, live. A streamed cheap stage is *buffered* until accepted — the client sees one
coherent stream, whichever stage answered, and pays for it in time to first token: the
cheap stage's whole answer (or, with ``accept_prefix_tokens``, its first N tokens) is read
before the first byte is sent. Every call is on the trace (``trace.stages``), and the
settled usage and cost are their sum.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from crossroads.config.plans import CascadePlan, Stage
from crossroads.exceptions import UpstreamError
from crossroads.plans.accept import Acceptance
from crossroads.plans.calls import Answer, call, deliver, record, record_failure, variant
from crossroads.types import Request, Response, RoutingRequest, Trace

if TYPE_CHECKING:
    from crossroads.engine import Engine, EngineStream

SAMPLING_TEMPERATURE = 0.7  # for ``samples > 1`` when neither the stage nor the client sets one


class Cascade:
    """Runs a :class:`~crossroads.config.plans.CascadePlan`."""

    kind = "cascade"

    def __init__(self, config: CascadePlan) -> None:
        self.config = config

    def prepare(self) -> Cascade:
        """Compile each stage's rules (loads verifier artifacts)."""
        self.acceptance_ = [Acceptance(s.accept).prepare() for s in self.config.stages]
        return self

    async def serve(
        self, engine: Engine, request: Request, facts: RoutingRequest, trace: Trace, start: float
    ) -> Response | EngineStream:
        """Answer ``request`` from the first stage whose answer is accepted."""
        trace.plan, trace.stages = self.kind, []
        prefix = facts.text[: engine.prefix_chars]
        stages = self.config.stages
        for i, stage in enumerate(stages[:-1]):
            answer = await self._stage(engine, i, stage, request, facts, trace, prefix)
            if answer is not None:
                return deliver(engine, answer, request, trace, start)
        last = len(stages) - 1
        return await self._last(engine, last, stages[last], request, trace, start, prefix)

    async def _stage(
        self,
        engine: Engine,
        index: int,
        stage: Stage,
        request: Request,
        facts: RoutingRequest,
        trace: Trace,
        prefix: str,
    ) -> Answer | None:
        """Run one stage: the accepted answer, or ``None`` to escalate."""
        acceptance = self.acceptance_[index]
        temperature = stage.temperature
        if stage.samples > 1 and temperature is None and request.temperature is None:
            temperature = SAMPLING_TEMPERATURE
        sent = variant(request, logprobs=acceptance.logprobs, temperature=temperature)
        prefix_tokens = stage.accept_prefix_tokens if acceptance.prefix_ok else None
        names = [m for m in stage.models for _ in range(stage.samples)]
        started = time.perf_counter()
        results = await asyncio.gather(
            *(
                call(engine, index, name, sent, trace, prefix, prefix_tokens=prefix_tokens)
                for name in names
            ),
            return_exceptions=True,
        )
        answers: list[Answer] = []
        for name, result in zip(names, results, strict=True):
            if isinstance(result, Answer):
                answers.append(result)
            elif isinstance(result, UpstreamError):
                record_failure(trace, index, name, result, started)
            else:  # the request's fault or ours (or cancellation): no point escalating
                await _release(answers)
                raise result
        judgement = await acceptance.judge(answers, request, facts)
        for i, answer in enumerate(answers):
            if answer is judgement.chosen:
                record(trace, answer, "accepted", judgement.reason, judgement.score)
            else:
                verdict = "lost" if judgement.chosen is not None else "rejected"
                reason = judgement.dropped.get(i, judgement.reason)
                record(trace, answer, verdict, reason, judgement.scores.get(i))
        await _release([a for a in answers if a is not judgement.chosen])
        return judgement.chosen

    async def _last(
        self,
        engine: Engine,
        index: int,
        stage: Stage,
        request: Request,
        trace: Trace,
        start: float,
        prefix: str,
    ) -> Response | EngineStream:
        """The last stage: one call, its models as a fallback chain, served as it comes."""
        chain = list(
            dict.fromkeys(
                m
                for name in stage.models
                for m in (name, *engine.dispatcher.models_[name].fallbacks)
            )
        )
        sent = variant(request, logprobs=None, temperature=stage.temperature)
        started = time.perf_counter()
        try:
            if request.stream:
                opened = await engine.dispatcher.open_stream(chain, sent, trace, prefix)
                answer = Answer(
                    index,
                    opened.model,
                    opened.fmt,
                    opened.endpoint.key,
                    0.0,
                    stream=opened,
                    complete=False,
                )
            else:
                completion, model, fmt = await engine.dispatcher.complete(
                    chain, sent, trace, prefix
                )
                answer = Answer(
                    index,
                    model,
                    fmt,
                    trace.attempts[-1].upstream,
                    0.0,
                    usage=completion.usage,
                    body=completion.body,
                    parsed=None
                    if request.source == fmt.NAME
                    else fmt.parse_response(completion.body, model.name),
                )
        except BaseException as exc:
            record_failure(trace, index, stage.models[0], exc, started)
            raise
        answer.latency_ms = (time.perf_counter() - started) * 1000
        record(trace, answer, "accepted", "last stage", None)
        return deliver(engine, answer, request, trace, start)


async def _release(answers: list[Answer]) -> None:
    for answer in answers:
        await answer.release()
