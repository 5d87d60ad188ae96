"""Has-code signal: fenced blocks, or enough lines that look like source code."""

from __future__ import annotations

import re

from crossroads.signals.base import SIGNALS, Signal
from crossroads.types import RoutingRequest, SignalResult

# Words a code-like line may start with (after whitespace), by the kind of line.
_BLOCKS = [
    "def",
    "class",
    "import",
    "from",
    "return",
    "if",
    "elif",
    "for",
    "while",
    "try",
    "except",
    "with",
    "async",
    "await",
]
_DECLARATIONS = [
    "function",
    "const",
    "let",
    "var",
    "public",
    "private",
    "static",
    "fn",
    "func",
    "package",
    "using",
    "#include",
]
_SQL = ("SELECT", "INSERT", "UPDATE", "DELETE")
_CODE_LINE = re.compile(
    rf"""^\s*(?:
        (?:{"|".join(_BLOCKS)})\b.*:?\s*$
      | (?:{"|".join(map(re.escape, _DECLARATIONS))})\b
      | .*[;{{}}]\s*$
      | .*\)\s*(?:=>|->)
      | \s*(?:{"|".join(_SQL)})\b.+\b(?:FROM|INTO|SET|WHERE)\b
    )""",
    re.VERBOSE | re.MULTILINE,
)
_STARTS = (*_BLOCKS, *_DECLARATIONS, *_SQL)
_FIRSTS = frozenset(word[0] for word in _STARTS)


@SIGNALS.register("has_code")
class HasCodeSignal(Signal):
    """Matches a code fence, or at least ``min_lines`` code-like lines."""

    kind = "has_code"
    value_spec = None  # "fence", or code-like lines counted only up to min_lines: not comparable

    def prepare(self) -> None:
        self.min_lines: int = self.config.min_lines

    def compute(self, request: RoutingRequest) -> SignalResult:
        text = self.text_of(request)
        if "```" in text or "~~~" in text:
            return SignalResult(self.name, True, "fence")
        enough = self.min_lines
        lines = code_lines(text, enough)
        return SignalResult(self.name, lines >= enough, lines)


def code_lines(text: str, enough: int) -> int:
    """How many code-like lines ``text`` has (``_CODE_LINE``'s matches, as ``finditer``
    finds them), counted up to ``enough``. A match begins at a line start (``^``), so only
    line starts are tried; in a text without any of ";{})" only those of lines that start
    with one of the words (or are blank: the leading whitespace may run on), as ``.*``
    stays on its line."""
    match = _CODE_LINE.match
    every = ";" in text or "{" in text or "}" in text or ")" in text
    count = 0
    pos = 0
    while True:
        newline = text.find("\n", pos)
        m = None
        if every:
            m = match(text, pos)  # "^" holds at ``pos``: the text's start or after a newline
        else:
            head = (text[pos:] if newline == -1 else text[pos:newline]).lstrip()
            if not head or (head[0] in _FIRSTS and head.startswith(_STARTS)):
                m = match(text, pos)
        if m is not None:
            count += 1
            if count >= enough:
                return count
            end = m.end()
            if end > pos and text[end - 1] == "\n":  # the match ended at a line start
                pos = end
                continue
            newline = text.find("\n", end)
        if newline == -1:
            return count
        pos = newline + 1
