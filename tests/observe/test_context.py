"""W3C ``traceparent``: what is a valid caller context, and what a new trace is called."""

from __future__ import annotations

import pytest

from crossroads.dispatch.http import traced_head
from crossroads.observe.context import TRACEPARENT, enter_attempt, parse_traceparent, trace_context
from crossroads.types import Caller, Trace

TID, SID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        (f"00-{TID}-{SID}-01", (TID, SID, True)),
        (f"00-{TID}-{SID}-00", (TID, SID, False)),
        (f" 00-{TID}-{SID}-03 ", (TID, SID, True)),  # other flag bits are ignored
        (f"01-{TID}-{SID}-01-future", (TID, SID, True)),  # a later version may add fields
        (f"00-{TID}-{SID}-01-extra", None),  # version 00 has exactly four
        (f"ff-{TID}-{SID}-01", None),
        (f"00-{'0' * 32}-{SID}-01", None),
        (f"00-{TID}-{'0' * 16}-01", None),
        (f"00-{TID.upper()}-{SID}-01", None),
        ("00-abc-def-01", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_traceparent(header: str | None, parsed: tuple[str, str, bool] | None) -> None:
    assert parse_traceparent(header) == parsed


def test_a_new_trace_is_the_crossroads_trace_id_sampled_by_ratio() -> None:
    trace = Trace("0190f3c2a1b4e5d6c7b8a9f0", 0.0, "auto", "chat", False, caller=Caller())
    context = trace_context(trace, 1.0)
    assert context == ("00000000" + trace.trace_id, None, True)
    assert not trace_context(trace, 0.0).sampled
    trace.caller = Caller(headers={"traceparent": f"00-{TID}-{SID}-00"})
    assert trace_context(trace, 1.0) == (TID, SID, False)  # the caller decides


def test_an_attempt_sends_its_own_span_id_in_the_raw_head() -> None:
    trace = Trace("0190f3c2a1b4e5d6c7b8a9f0", 0.0, "auto", "chat", False)
    head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: h:1\r\ncontent-length: "
    assert traced_head(head) == head  # tracing off: unchanged
    token = TRACEPARENT.set(None)
    first = enter_attempt(trace, 1.0)
    try:
        second = enter_attempt(trace, 1.0)
        assert len(second) == 16 and second != first  # each attempt its own span
        value = TRACEPARENT.get()
        assert value == f"00-00000000{trace.trace_id}-{second}-01"
        assert traced_head(head) == (
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: h:1\r\n"
            b"traceparent: " + value.encode() + b"\r\ncontent-length: "
        )
    finally:
        TRACEPARENT.reset(token)
