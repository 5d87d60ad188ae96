"""Keyword and regex signals: one precompiled pattern per signal, no per-request work."""

from __future__ import annotations

import re

from crossroads.signals.base import SIGNALS, Signal
from crossroads.types import RoutingRequest, SignalResult


@SIGNALS.register("keyword")
class KeywordSignal(Signal):
    """Matches when any (``match: any``) or all (``match: all``) keywords occur."""

    kind = "keyword"

    def prepare(self) -> None:
        flags = 0 if self.config.case_sensitive else re.IGNORECASE
        words = sorted(self.config.keywords, key=len, reverse=True)
        if self.config.word_boundary:
            # \b fails next to non-word characters ("c++"), so bound by non-word lookarounds.
            parts = [rf"(?<!\w){re.escape(w)}(?!\w)" for w in words]
        else:
            parts = [re.escape(w) for w in words]
        self._any = re.compile("|".join(parts), flags)
        self._each = [re.compile(p, flags) for p in parts]

    def compute(self, request: RoutingRequest) -> SignalResult:
        text = self.text_of(request)
        if self.config.match == "any":
            m = self._any.search(text)
            return SignalResult(self.name, m is not None, m.group(0) if m else None)
        found = [p.search(text) for p in self._each]
        hits = [m.group(0) for m in found if m]
        return SignalResult(self.name, len(hits) == len(found), ",".join(hits) or None)


@SIGNALS.register("regex")
class RegexSignal(Signal):
    """Matches when any (or all) patterns search successfully."""

    kind = "regex"

    def prepare(self) -> None:
        flags = 0 if self.config.case_sensitive else re.IGNORECASE
        self._patterns = [re.compile(p, flags) for p in self.config.patterns]

    def compute(self, request: RoutingRequest) -> SignalResult:
        text = self.text_of(request)
        if self.config.match == "any":
            for pattern in self._patterns:
                m = pattern.search(text)
                if m:
                    return SignalResult(self.name, True, m.group(0))
            return SignalResult(self.name, False)
        hits = [p.search(text) for p in self._patterns]
        matched = all(hits)
        return SignalResult(self.name, matched, hits[0].group(0) if matched and hits[0] else None)
