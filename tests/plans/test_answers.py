"""Normalised final answers: what agreement compares."""

from __future__ import annotations

import pytest

from crossroads.plans.answers import answer_key, final_answer
from crossroads.types import ToolCall


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("so 3 + 4 = 7.\n#### 7", "auto", "number:7"),
        ("The answer is 1,000.", "auto", "number:1000"),
        ("The final answer is $\\boxed{3/4}$", "auto", "number:0.75"),
        ("The answer is (b).", "auto", "choice:B"),
        ("Answer: C) the mitochondria", "auto", "choice:C"),
        ("Reasoning...\n(D)", "auto", "choice:D"),
        ("a dog", "auto", "short:dog"),
        ("The Eiffel Tower!", "short", "short:eiffel tower"),
        ("I think it costs 12 dollars, maybe 13", "number", "number:13"),
        ("no letter here at all", "choice", None),
        ("Long text " * 10, "auto", None),
        ("#### 7", "text", None),
        ("", "auto", None),
    ],
)
def test_final_answer(text: str, kind: str, expected: str | None) -> None:
    assert final_answer(text, kind) == expected


def test_equal_final_answers_in_different_words_agree() -> None:
    assert final_answer("6 x 7 = 42. #### 42") == final_answer("The answer is 42.")
    assert final_answer("#### 41") != final_answer("#### 42")


def test_tool_calls_and_json_agree_on_content_not_spelling() -> None:
    a = [ToolCall("1", "f", '{"a": 1, "b": [2]}')]
    b = [ToolCall("2", "f", '{ "b": [2], "a": 1 }')]
    assert answer_key("", a, False, "auto") == answer_key("", b, False, "auto")
    assert answer_key("", a, False, "auto") != answer_key(
        "", [ToolCall("3", "g", "{}")], False, "auto"
    )
    assert answer_key('{"x": 1, "y": 2}', [], True, "auto") == answer_key(
        '{"y":2,"x":1}', [], True, "auto"
    )
