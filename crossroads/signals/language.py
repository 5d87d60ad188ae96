"""Language signal: the prompt's language from an offline detector (:mod:`crossroads.language`).

The value is the ISO 639-1 code (``de``), so a rule can ask which language a prompt is in;
the detail is ``de=0.98``, the detector's confidence. Prompts with no letters (code, numbers)
get whatever the detector guesses, with a low confidence: set ``min_confidence``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from crossroads.registry import SIGNALS
from crossroads.signals.base import Signal
from crossroads.types import RoutingRequest, SignalResult, ValueSpec


@SIGNALS.register("language")
class LanguageSignal(Signal):
    """The detected language (value) and its confidence (detail)."""

    kind = "language"
    value_spec = ValueSpec("label", nullable=True)  # the ISO 639-1 code; none without text

    @classmethod
    def value_spec_for(cls, config: Any) -> ValueSpec:
        """Without ``min_confidence`` it matches exactly when the code is one of
        ``languages``."""
        assert cls.value_spec is not None
        if config.min_confidence > 0 or not config.languages:
            return cls.value_spec
        return replace(cls.value_spec, matched_when=(("in", frozenset(config.languages)),))

    def prepare(self) -> None:
        from crossroads.language import load_detector

        self._detect = load_detector(self.config.detector).detect
        self._wanted = frozenset(self.config.languages)

    def compute(self, request: RoutingRequest) -> SignalResult:
        text = self.text_of(request)
        if not text.strip():
            return SignalResult(self.name, False, None, detail="no text")
        code, confidence = self._detect(text)
        matched = (not self._wanted or code in self._wanted) and (
            confidence >= self.config.min_confidence
        )
        return SignalResult(self.name, matched, code, detail=f"{code}={confidence:.2f}")
