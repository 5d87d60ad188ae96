"""Language signal: the prompt's language from an offline detector (:mod:`crossroads.language`).

The value is the ISO 639-1 code (``de``), so a rule can ask which language a prompt is in;
the detail is ``de=0.98``, the detector's confidence. Prompts with no letters (code, numbers)
get whatever the detector guesses, with a low confidence: set ``min_confidence``.
"""

from __future__ import annotations

from crossroads.registry import SIGNALS
from crossroads.signals.base import Signal
from crossroads.types import RoutingRequest, SignalResult


@SIGNALS.register("language")
class LanguageSignal(Signal):
    """The detected language (value) and its confidence (detail)."""

    kind = "language"

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
