"""Token-count signal: matches when the prompt's token count falls in ``[min, max)``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from crossroads.signals.base import SIGNALS, Signal
from crossroads.tokens import count_tokens
from crossroads.types import RoutingRequest, SignalResult, ValueSpec


@SIGNALS.register("tokens")
class TokensSignal(Signal):
    """Prompt length in tokens (o200k), e.g. to send long contexts to long-context models."""

    kind = "tokens"
    value_spec = ValueSpec("count", 0)  # the token count

    @classmethod
    def value_spec_for(cls, config: Any) -> ValueSpec:
        """It matches exactly when the count is in ``[min, max)``."""
        when: tuple[tuple[str, Any], ...] = ((">=", float(config.min)),) if config.min else ()
        when += (("<", float(config.max)),) if config.max is not None else ()
        return replace(cls.value_spec, matched_when=when)

    def prepare(self) -> None:
        self._min: int = self.config.min
        self._max: int | None = self.config.max

    def compute(self, request: RoutingRequest) -> SignalResult:
        n = count_tokens(request.last_user_text) if self.last_user else request.prompt_tokens
        upper = self._max
        return SignalResult(self.name, n >= self._min and (upper is None or n < upper), n)
