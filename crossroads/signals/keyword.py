"""Keyword and regex signals: one precompiled pattern per signal, no per-request work.

Their results say which rules matched and how often, never what they matched: ``value`` is
the number of matches (counted up to ``COUNT_LIMIT``) and ``detail`` lists the rules that
matched (``keywords[0],keywords[2]``, ``patterns[1]``). A signal configured with
``record_match: true`` adds the first matched text to ``detail``, with keys and personal data
masked and at most ``FIELD_CHARS`` characters.
"""

from __future__ import annotations

import re
from dataclasses import replace
from itertools import islice
from typing import Any

from crossroads.redact import bounded, scrub
from crossroads.signals.base import SIGNALS, Signal
from crossroads.signals.prefilter import absence_test
from crossroads.types import RoutingRequest, SignalResult, ValueSpec

COUNT_LIMIT = 100  # matches counted per signal and request at most


class _MatchSignal(Signal):
    """What keyword and regex signals share: how a match is reported."""

    rule = ""  # the config list the rules come from: "keywords" or "patterns"
    value_spec = ValueSpec("count", 0, COUNT_LIMIT)  # the number of matches

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.any: bool = config.match == "any"  # read per request: plain attributes
        self.case_sensitive: bool = config.case_sensitive

    @classmethod
    def value_spec_for(cls, config: Any) -> ValueSpec:
        """With ``match: any`` the signal matches exactly when it counts a match."""
        return replace(
            cls.value_spec, matched_when=((">=", 1.0),) if config.match == "any" else None
        )

    def report(self, matched: bool, count: int, rules: list[int], text: str | None) -> SignalResult:
        if not rules:
            return SignalResult(self.name, matched, 0)
        detail = ",".join(f"{self.rule}[{i}]" for i in rules)
        if text is not None and self.config.record_match:
            detail += f": {bounded(scrub(text))!r}"
        return SignalResult(self.name, matched, count, detail=detail)


def _count(pattern: re.Pattern[str], text: str) -> int:
    return sum(1 for _ in islice(pattern.finditer(text), COUNT_LIMIT))


@SIGNALS.register("keyword")
class KeywordSignal(_MatchSignal):
    """Matches when any (``match: any``) or all (``match: all``) keywords occur."""

    kind = "keyword"
    rule = "keywords"

    def prepare(self) -> None:
        flags = 0 if self.config.case_sensitive else re.IGNORECASE
        keywords = self.config.keywords
        # Longest first, so that "c++" wins over "c"; each in its own group to tell which.
        self._order = sorted(range(len(keywords)), key=lambda i: len(keywords[i]), reverse=True)
        if self.config.word_boundary:
            # \b fails next to non-word characters ("c++"), so bound by non-word lookarounds.
            parts = [rf"(?<!\w){re.escape(w)}(?!\w)" for w in keywords]
        else:
            parts = [re.escape(w) for w in keywords]
        self._any = re.compile("|".join(f"({parts[i]})" for i in self._order), flags)
        self._each = [re.compile(p, flags) for p in parts]
        # A keyword matches only where it occurs as a substring. For ASCII keywords in ASCII
        # text, lowercasing is exactly IGNORECASE, so a text holding none of them (most
        # prompts) is settled by ``in`` checks instead of a regex scan of every position.
        self._needles: list[str] | None = None
        if keywords and all(k.isascii() for k in keywords):
            self._needles = [k if self.config.case_sensitive else k.lower() for k in keywords]

    def compute(self, request: RoutingRequest) -> SignalResult:
        text = self.text_of(request)
        needles = self._needles
        if needles is not None and text.isascii():
            hay = text if self.case_sensitive else text.lower()
            for needle in needles:
                if needle in hay:
                    break
            else:
                return SignalResult(self.name, False, 0)  # what report() gives: no rule
        if self.any:
            hits = list(islice(self._any.finditer(text), COUNT_LIMIT))
            if not hits:
                return SignalResult(self.name, False, 0)  # what report() gives: no rule
            found = sorted({self._order[m.lastindex - 1] for m in hits if m.lastindex})
            return self.report(True, len(hits), found, hits[0].group(0))
        firsts = [p.search(text) for p in self._each]
        found = [i for i, m in enumerate(firsts) if m]
        count = min(COUNT_LIMIT, sum(_count(self._each[i], text) for i in found))
        first = next((m.group(0) for m in firsts if m), None)
        return self.report(len(found) == len(firsts), count, found, first)


@SIGNALS.register("regex")
class RegexSignal(_MatchSignal):
    """Matches when any (or all) patterns search successfully."""

    kind = "regex"
    rule = "patterns"

    def prepare(self) -> None:
        flags = 0 if self.config.case_sensitive else re.IGNORECASE
        self._patterns = [re.compile(p, flags) for p in self.config.patterns]
        # A text without what every match of a pattern contains is not searched.
        self._absent = [absence_test(p) for p in self._patterns]

    def compute(self, request: RoutingRequest) -> SignalResult:
        text = self.text_of(request)
        if self.any:
            for i, pattern in enumerate(self._patterns):
                absent = self._absent[i]
                if absent is not None and absent(text):
                    continue
                m = pattern.search(text)
                if m:
                    return self.report(True, _count(pattern, text), [i], m.group(0))
            return SignalResult(self.name, False, 0)
        firsts = [
            None if absent is not None and absent(text) else p.search(text)
            for p, absent in zip(self._patterns, self._absent, strict=True)
        ]
        found = [i for i, m in enumerate(firsts) if m]
        count = min(COUNT_LIMIT, sum(_count(self._patterns[i], text) for i in found))
        first = next((m.group(0) for m in firsts if m), None)
        return self.report(len(found) == len(firsts), count, found, first)
