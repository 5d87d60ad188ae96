"""Simple checks: empty, refusal, truncated, JSON (schema, tool arguments), code, arithmetic."""

from __future__ import annotations

from crossroads.plans.arithmetic import calculations
from crossroads.plans.checks import failed_check
from crossroads.types import Request, ResponseFormat, Tool, ToolCall

ALL = ["empty", "refusal", "truncated", "json", "code"]


def check(
    text: str, request: Request | None = None, calls=(), finish=None, checks=ALL, complete=True
):
    return failed_check(
        text, list(calls), finish, complete, request or Request("chat", "m", "openai_chat"), checks
    )


def test_a_plain_answer_passes() -> None:
    assert check("Paris is the capital of France.") is None


def test_empty_refusal_truncated() -> None:
    assert check("  ").startswith("empty")
    assert check("I'm sorry, but I can't help with that.").startswith("refusal")
    assert check("As an AI language model, I cannot do that").startswith("refusal")
    assert check("Sorry for the wait: here it is.") is None  # an apology is not a refusal
    assert check("x", finish="content_filter").startswith("refusal")
    assert check("one two", finish="length").startswith("truncated")
    assert check("one two", finish="length", checks=["empty"]) is None


def test_json_mode_against_the_schema() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    request = Request(
        "chat", "m", "openai_chat", response_format=ResponseFormat("json_schema", "a", schema)
    )
    assert check('{"n": 3}', request) is None
    assert "violates the schema at n" in check('{"n": "3"}', request)
    assert "not valid JSON" in check('{"n": 3', request)
    assert check('```json\n{"n": 3}\n```', request) is None  # a fenced answer is unwrapped
    json_object = Request("chat", "m", "openai_chat", response_format=ResponseFormat("json_object"))
    assert "violates" in check("[1, 2]", json_object)
    assert check('{"n": 3', request, complete=False) is None  # a streamed prefix is not judged


def test_tool_call_arguments_against_the_tool() -> None:
    tool = Tool(
        "f",
        parameters={
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string"}},
        },
    )
    request = Request("chat", "m", "openai_chat", tools=[tool])
    assert check("", request, [ToolCall("1", "f", '{"city": "Paris"}')]) is None
    assert "violates the schema" in check("", request, [ToolCall("1", "f", '{"town": 1}')])
    assert "unknown tool" in check("", request, [ToolCall("1", "g", "{}")])
    assert "not valid JSON" in check("", request, [ToolCall("1", "f", "{")])


def test_python_blocks_must_parse() -> None:
    assert check("```python\ndef f(x):\n    return x\n```") is None
    assert "does not parse" in check("```python\ndef f(x:\n```")
    assert check("```rust\nfn main( {\n```") is None  # only Python is checked


def test_arithmetic() -> None:
    assert calculations("16 - 3 = 13, 13 - 4 = 9, 9 * $2 = $<<9*2=18>>18") == (3, 0)
    assert calculations("2/2 * 1/2 = 1/2 and 1,000 + 500 = 1,500") == (2, 0)
    assert calculations("3 x 4 = 13") == (1, 1)
    assert check("3 x 4 = 13", checks=["arithmetic"]).startswith("arithmetic: 1 of its 1")
    assert check("3 x 4 = 13") is None  # only when listed
