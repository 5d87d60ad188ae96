"""The formats' readers of upstream answers: anything malformed is the upstream's
protocol error (found by fuzz/upstream_response.py)."""

from __future__ import annotations

import pytest

from crossroads.exceptions import UpstreamProtocolError
from crossroads.formats import openai_chat, openai_completions, openai_embeddings


@pytest.mark.parametrize("raw", [b'{"choices": [1]}', b'{"choices": ["x"]}'])
@pytest.mark.parametrize("fmt", [openai_chat, openai_completions])
def test_answers_of_the_wrong_shape(fmt, raw: bytes) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UpstreamProtocolError, match="unexpected shape"):
        fmt.parse_response(raw, "u")


@pytest.mark.parametrize("data", [b'{"choices": [1]}', b'{"choices": "ab"}'])
@pytest.mark.parametrize("fmt", [openai_chat, openai_completions])
def test_stream_events_of_the_wrong_shape(fmt, data: bytes) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UpstreamProtocolError, match="unexpected shape"):
        fmt.decode_event(b"data: " + data + b"\n\n", data, "u")


def test_chat_tool_calls_of_the_wrong_shape() -> None:
    with pytest.raises(UpstreamProtocolError, match="unexpected shape"):
        openai_chat.parse_response(b'{"choices": [{"message": {"tool_calls": [1]}}]}', "u")
    data = b'{"choices": [{"delta": {"tool_calls": [1]}}]}'
    with pytest.raises(UpstreamProtocolError, match="unexpected shape"):
        openai_chat.decode_event(data, data, "u")


@pytest.mark.parametrize("raw", [b'{"data": ', b"[1]", b'{"data": 1}'])
def test_embeddings_answer_that_is_not_an_object_with_data(raw: bytes) -> None:
    with pytest.raises(UpstreamProtocolError, match="'data'"):
        openai_embeddings.parse_response(raw, "u")
