"""Cost of a call: estimated before it (for routing) and actual after it (from ``usage``)."""

from __future__ import annotations

from crossroads.config import ModelConfig
from crossroads.types import Usage


def estimate_cost(model: ModelConfig, prompt_tokens: int, output_tokens: int) -> float:
    """USD for ``prompt_tokens`` in and ``output_tokens`` out at the model's list price."""
    price = model.price
    return (prompt_tokens * price.input + output_tokens * price.output) / 1e6


def actual_cost(model: ModelConfig, usage: Usage) -> float:
    """USD for the tokens the upstream reported."""
    return estimate_cost(model, usage.prompt_tokens, usage.completion_tokens)
