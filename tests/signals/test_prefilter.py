"""An absence test says "cannot match" only for texts the pattern does not match."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossroads.signals.prefilter import absence_test

PATTERNS = [
    r"\d+\s*[-+*/^]\s*\d+",
    r"\bintegral\b",
    r"\b\d{3}-\d{4}\b",
    r"urgent",
    r"stack trace",
    r"[^a-z]x",
    r"a*b",
    r"x+?y",
    r"(?i)Strasse",
    r"k\w+",
    r"[\s\S]q",
    r"i\.e\.",
    r"caf\u00e9",
    r"foo|bar",
    r"(ab)c",
]
PIECES = [
    "1", "42", "\u0663", " ", "\n", "+", "-", "*", "/", "^", "integral", "INTEGRAL", "Integral",
    "integr\u0430l", "x", "X", "a", "b", "y", "k", "K", "\u212a", "\u017f", "s", "S", "ss",
    "\u00df", "strasse", "STRASSE", "q", "i.e.", "I.E.", "\u0130", "caf\u00e9", "CAF\u00c9",
    "urgent", "URGENT", "stack trace", "555-1234", "foo", "bar", "abc", "ABC",
]  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(
    st.sampled_from(PATTERNS),
    st.booleans(),
    st.lists(st.sampled_from(PIECES), max_size=12),
)
def test_absent_means_no_match(source: str, caseless: bool, pieces: list[str]) -> None:
    pattern = re.compile(source, re.IGNORECASE if caseless else 0)
    absent = absence_test(pattern)
    text = "".join(pieces)
    if absent is not None and absent(text):
        assert pattern.search(text) is None, (source, caseless, text)


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(PATTERNS), st.booleans(), st.text(max_size=40))
def test_any_text(source: str, caseless: bool, text: str) -> None:
    pattern = re.compile(source, re.IGNORECASE if caseless else 0)
    absent = absence_test(pattern)
    if absent is not None and absent(text):
        assert pattern.search(text) is None


@pytest.mark.parametrize(
    ("source", "flags", "text"),
    [
        (r"\bintegral\b", re.IGNORECASE, "Name three colours, please, and say why."),
        (r"\d+\s*[-+*/^]\s*\d+", re.IGNORECASE, "You are helpful."),
        (r"urgent", 0, "URGENT"),  # case-sensitive: the text holds no "urgent"
    ],
)
def test_a_text_without_the_required_part_is_settled(source: str, flags: int, text: str) -> None:
    absent = absence_test(re.compile(source, flags))
    assert absent is not None and absent(text)


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("strasse", "STRA\u017fSE"),  # IGNORECASE folds the long s: not settled by lower()
        ("k", "\u212a"),  # the Kelvin sign
    ],
)
def test_a_non_ascii_text_is_searched_under_ignorecase(source: str, text: str) -> None:
    pattern = re.compile(source, re.IGNORECASE)
    absent = absence_test(pattern)
    assert absent is not None and not absent(text)
    assert pattern.search(text) is not None


def test_an_alternation_requires_nothing() -> None:
    assert absence_test(re.compile("foo|bar")) is None
