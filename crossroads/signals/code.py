"""Has-code signal: fenced blocks, or enough lines that look like source code."""

from __future__ import annotations

import re

from crossroads.signals.base import SIGNALS, Signal
from crossroads.types import RoutingRequest, SignalResult

_FENCE = re.compile(r"```|~~~")
_CODE_LINE = re.compile(
    r"""^\s*(?:
        (?:def|class|import|from|return|if|elif|for|while|try|except|with|async|await)\b.*:?\s*$
      | (?:function|const|let|var|public|private|static|fn|func|package|using|\#include)\b
      | .*[;{}]\s*$
      | .*\)\s*(?:=>|->)
      | \s*(?:SELECT|INSERT|UPDATE|DELETE)\b.+\b(?:FROM|INTO|SET|WHERE)\b
    )""",
    re.VERBOSE | re.MULTILINE,
)


@SIGNALS.register("has_code")
class HasCodeSignal(Signal):
    """Matches a code fence, or at least ``min_lines`` code-like lines."""

    kind = "has_code"
    value_spec = None  # "fence", or code-like lines counted only up to min_lines: not comparable

    def compute(self, request: RoutingRequest) -> SignalResult:
        text = self.text_of(request)
        if _FENCE.search(text):
            return SignalResult(self.name, True, "fence")
        lines = 0
        for _ in _CODE_LINE.finditer(text):
            lines += 1
            if lines >= self.config.min_lines:
                return SignalResult(self.name, True, lines)
        return SignalResult(self.name, False, lines)
