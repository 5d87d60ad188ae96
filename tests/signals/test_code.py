"""The has-code signal counts code-like lines trying only line starts: the same count as
``finditer`` over every position."""

from __future__ import annotations

from itertools import islice

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossroads.signals.code import _CODE_LINE, code_lines

PIECES = [
    "\n", " ", "\t", "\r", "\x0b", "\x1c", "\x85", "\u2028", "\u00a0", "x", "é", "ſ", "1",
    ";", "{", "}", "(", ")", "=>", "->", ":", "def", "class ", "return", "import", "function",
    "#include", "SELECT ", "select ", " FROM ", "WHERE", "UPDATE t SET", "const", "if x:",
    "fn ", "await", "DELETE ", "using", "Def", "definitely",
]  # fmt: skip


def by_finditer(text: str, enough: int) -> int:
    return sum(1 for _ in islice(_CODE_LINE.finditer(text), enough))


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40), st.integers(1, 6))
def test_line_starts_count_what_finditer_counts(pieces: list[str], enough: int) -> None:
    text = "".join(pieces)
    assert code_lines(text, enough) == by_finditer(text, enough)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200), st.integers(1, 4))
def test_any_text(text: str, enough: int) -> None:
    assert code_lines(text, enough) == by_finditer(text, enough)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        "a;\n\nb;\n",  # a match that ends after a newline: the next one starts there
        "a;\n  \n\n  def f():\n",  # "\s*" runs across blank lines
        "x = 1;   \n",
        "f() => 1\r\nSELECT a FROM b",
        "text\u2028def f():",  # not a line break for "^"
        "Name three colours, please, and say why.",
    ],
)
def test_edge_cases(text: str) -> None:
    for enough in (1, 2, 3, 100):
        assert code_lines(text, enough) == by_finditer(text, enough)
