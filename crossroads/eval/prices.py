"""The declared price table for datasets that record no cost in money.

Reports name the rule used per dataset (``PricedCost.note``). Prices are USD per 1M tokens,
one blended price per model, close to 2024 hosted list prices; they are assumptions, stated
so that anyone can change them.
"""

from __future__ import annotations

import re

# Name patterns for API models, checked in order (USD per 1M tokens, blended).
API_PRICES: list[tuple[str, float]] = [
    (r"gpt4_(turbo|1106)|gpt-4-1106|gpt-4-turbo", 30.0),
    (r"gpt4|gpt-4", 60.0),
    (r"text_davinci", 20.0),
    (r"gpt-3\.5|gpt35|chatgpt", 2.0),
    (r"claude-instant", 2.4),
    (r"claude", 24.0),
    (r"mistral-medium", 8.1),
    (r"cohere|jina", 2.0),
    (r"8x7b", 0.6),
    (r"phi-2", 0.1),
]
# Open-weight models by parameter count (billions): first tier whose bound >= size.
PARAM_TIERS: list[tuple[float, float]] = [(3.5, 0.1), (9.0, 0.2), (15.0, 0.3), (40.0, 0.8)]
LARGE_PRICE = 0.9
DEFAULT_PRICE = 0.2  # an unnamed fine-tune of a 7B model
PRICE_PER_BILLION_PARAMS = 0.025  # for same-size families: price proportional to size
ASSUMED_OUTPUT_TOKENS = 256
ASSUMED_REQUEST_TOKENS = 1000


def price_by_name(key: str) -> float:
    """Blended USD per 1M tokens for a model key, from API names or a parameter count."""
    low = key.lower()
    for pattern, price in API_PRICES:
        if re.search(pattern, low):
            return price
    match = re.search(r"(\d+(?:\.\d+)?)b\b", low.replace("_", "-"))
    if match:
        size = float(match.group(1))
        for bound, price in PARAM_TIERS:
            if size <= bound:
                return price
        return LARGE_PRICE
    return DEFAULT_PRICE
