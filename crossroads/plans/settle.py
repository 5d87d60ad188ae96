"""Settlement of a multi-call plan: every call is paid for, so the trace's usage and cost
are the sums over its calls (``trace.stages``). Called by :meth:`Engine.settle`, the one
place usage and cost are set."""

from __future__ import annotations

from crossroads.config import ModelConfig
from crossroads.cost import actual_cost
from crossroads.types import Trace, Usage


def settle_stages(trace: Trace, models: dict[str, ModelConfig], usage: Usage) -> None:
    """Give the served call (the accepted one not yet settled) ``usage``, price every call,
    and put the sums on the trace."""
    assert trace.stages is not None
    prompt = completion = 0
    estimated = False
    cost = 0.0
    for stage in trace.stages:
        if stage.usage is None and stage.verdict == "accepted":
            stage.usage = usage
        if stage.usage is None:
            continue
        model = models.get(stage.model)
        stage.cost = actual_cost(model, stage.usage) if model is not None else 0.0
        cost += stage.cost
        prompt += stage.usage.prompt_tokens
        completion += stage.usage.completion_tokens
        estimated = estimated or stage.usage.estimated
    trace.usage = Usage(prompt, completion, estimated)
    trace.cost = cost
