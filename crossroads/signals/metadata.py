"""Caller metadata signal: API key name, the ``user`` field, a request header, or the
operation asked for (``chat``, ``completions`` or ``embeddings``)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from crossroads.redact import bounded
from crossroads.signals.base import SIGNALS, Signal
from crossroads.types import RoutingRequest, SignalResult, ValueSpec


@SIGNALS.register("metadata")
class MetadataSignal(Signal):
    """Matches when the caller's value is one of ``values`` or matches ``pattern``; the
    result records the value bounded like every recorded caller field."""

    kind = "metadata"
    value_spec = ValueSpec("label", nullable=True)  # the caller's value, any string; none if unset

    @classmethod
    def value_spec_for(cls, config: Any) -> ValueSpec:
        """Without a ``pattern`` it matches exactly when the value is one of ``values``."""
        when = None if config.pattern else (("in", frozenset(config.values)),)
        return replace(cls.value_spec, matched_when=when)

    def prepare(self) -> None:
        self._values = frozenset(self.config.values)
        self._pattern = re.compile(self.config.pattern) if self.config.pattern else None
        self._header = (self.config.header or "").lower()

    def compute(self, request: RoutingRequest) -> SignalResult:
        caller = request.caller
        source = self.config.source
        if source == "key":
            value = caller.key_name
        elif source == "user":
            value = caller.user
        elif source in ("operation", "endpoint"):  # "endpoint": its first name
            value = request.operation
        else:
            value = caller.headers.get(self._header)
        if value is None:
            return SignalResult(self.name, False)
        matched = value in self._values or bool(self._pattern and self._pattern.search(value))
        return SignalResult(self.name, matched, bounded(value))
