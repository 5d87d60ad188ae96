"""The Messages format's parsing of client bodies: what is refused, with which field."""

from __future__ import annotations

import orjson
import pytest

from crossroads.exceptions import InvalidRequestError
from crossroads.formats import anthropic_messages


def body(**fields: object) -> bytes:
    return orjson.dumps({"model": "m", "max_tokens": 5, **fields})


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (  # text that is not text, in a system block (was a 500: the join failed)
            body(
                system=[{"type": "text", "text": {"x": 1}}],
                messages=[{"role": "user", "content": "hi"}],
            ),
            "system[0]",
        ),
        (  # ... and inside a tool result
            body(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "t",
                                "content": [{"type": "text", "text": [1]}],
                            }
                        ],
                    }
                ]
            ),
            "messages[0].content[0].content[0]",
        ),
    ],
)
def test_blocks_whose_text_is_not_text_are_a_400(raw: bytes, param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        anthropic_messages.parse(raw)
    assert info.value.status == 400 and info.value.param == param


def test_tool_results_keep_their_text() -> None:
    content = [{"type": "text", "text": "ok"}, {"type": "text", "text": "then"}]
    request = anthropic_messages.parse(
        body(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t", "content": content}],
                }
            ]
        )
    )
    (message,) = request.messages
    assert (message.role, message.content, message.tool_call_id) == ("tool", "ok\nthen", "t")


def test_a_text_block_with_null_text_counts_as_empty() -> None:
    # Found by schemathesis: {"type": "text", "text": null} in a system list was a 500.
    request = anthropic_messages.parse(
        body(
            system=[{"type": "text", "text": "a"}, {"type": "text", "text": None}],
            messages=[{"role": "user", "content": "hi"}],
        )
    )
    assert request.messages[0].content == "a\n"
