from __future__ import annotations

from crossroads.config import RetryConfig
from crossroads.dispatch.errors import status_error
from crossroads.dispatch.retries import backoff_s, is_retryable
from crossroads.exceptions import InvalidRequestError, UpstreamConnectError, UpstreamTimeoutError
from crossroads.types import Message, Request


def test_what_is_retryable() -> None:
    assert is_retryable(UpstreamConnectError("x"))
    assert is_retryable(UpstreamTimeoutError("x"))
    for status in (429, 500, 502, 503, 404, 401):
        assert is_retryable(status_error("u", status, b"{}", {})), status
    for status in (400, 422):
        assert not is_retryable(status_error("u", status, b"{}", {})), status
    assert not is_retryable(InvalidRequestError("bad"))


def test_backoff_is_jittered_exponential_and_capped() -> None:
    cfg = RetryConfig(backoff_base_ms=100, backoff_max_ms=300)
    assert all(0 <= backoff_s(1, cfg) <= 0.1 for _ in range(100))
    assert all(0 <= backoff_s(5, cfg) <= 0.3 for _ in range(100))
    assert len({backoff_s(3, cfg) for _ in range(20)}) > 1


def test_retry_after_wins() -> None:
    assert backoff_s(1, RetryConfig(), retry_after=2.5) == 2.5


def test_status_error_reads_retry_after_and_message() -> None:
    err = status_error("u", 429, b'{"error": {"message": "slow down"}}', {"retry-after": "3"})
    assert err.status == 429 and err.retry_after == 3.0 and "slow down" in str(err)


def test_upstream_body_names_the_endpoint_model_and_caps_output() -> None:
    from crossroads.config import parse_config
    from crossroads.dispatch.dispatcher import Dispatcher, upstream_body
    from crossroads.formats import openai_chat

    cfg = parse_config(
        {
            "upstreams": [{"name": "u", "base_url": "http://x/v1"}],
            "models": [
                {"name": "a", "upstream": "u", "upstream_model": "org/a", "max_output_tokens": 100},
                {"name": "b", "upstream": "u"},
            ],
        }
    )
    d = Dispatcher(cfg, {"u": type("U", (), {"name": "u"})()}).prepare()  # type: ignore[dict-item]
    a, b = d.endpoints_["a"][0], d.endpoints_["b"][0]
    messages = [{"role": "user", "content": "x"}]
    body = {"model": "auto", "messages": messages}

    def sent(body: dict, e, m) -> dict:  # type: ignore[no-untyped-def]
        return upstream_body(openai_chat.parse_request(body), openai_chat, e, m, {})

    assert sent(body, a, cfg.model("a")) == {
        "model": "org/a",
        "messages": messages,
        "max_tokens": 100,
    }
    assert sent({**body, "max_tokens": 10}, a, cfg.model("a"))["max_tokens"] == 10
    assert (
        sent({**body, "max_completion_tokens": 500}, a, cfg.model("a"))["max_completion_tokens"]
        == 100
    )
    assert sent(body, b, cfg.model("b")) == {"model": "b", "messages": messages}


CHAT_REQUEST = Request("chat", "a", "openai_chat", [Message("user", "x")])


class _Failing:
    """An upstream that answers every call with a 503 (and counts them)."""

    def __init__(self, name: str = "u") -> None:
        self.name = name
        self.calls = 0

    async def complete(self, endpoint, body):  # type: ignore[no-untyped-def]
        self.calls += 1
        raise status_error(self.name, 503, b'{"error": {"message": "busy"}}', {})


def _dispatcher(upstream, retries: dict | None = None):  # type: ignore[no-untyped-def]
    from crossroads.config import parse_config
    from crossroads.dispatch.dispatcher import Dispatcher

    cfg = parse_config(
        {
            "upstreams": [{"name": "u", "base_url": "http://x/v1"}],
            "models": [{"name": "a", "upstream": "u"}],
            "dispatch": {
                # A breaker that never opens: only the retry budget can hold retries back.
                "breaker": {"consecutive_failures": 10**6, "min_requests": 10**6},
                "retries": {"max_attempts": 4, "backoff_base_ms": 0, **(retries or {})},
            },
        }
    )
    return Dispatcher(cfg, {"u": upstream}).prepare()


async def test_retries_are_held_to_a_budget_of_the_request_rate() -> None:
    """A failing upstream whose breaker does not open sees at most (1 + ratio) times its
    load, not ``max_attempts`` times."""
    import pytest

    from crossroads.exceptions import UpstreamStatusError
    from crossroads.types import Trace

    upstream = _Failing()
    d = _dispatcher(upstream, {"budget_ratio": 0.2, "budget_min_per_s": 0})
    for i in range(100):
        with pytest.raises(UpstreamStatusError):
            await d.complete(["a"], CHAT_REQUEST, Trace(f"t{i}", 0, "", "chat", False), "")
    assert upstream.calls <= 100 * 1.2 + 1, upstream.calls


async def test_a_few_retries_per_second_are_always_allowed() -> None:
    import pytest

    from crossroads.exceptions import UpstreamStatusError
    from crossroads.types import Trace

    upstream = _Failing()
    d = _dispatcher(upstream, {"budget_ratio": 0.0, "budget_min_per_s": 1})
    trace = Trace("t", 0, "", "chat", False)
    with pytest.raises(UpstreamStatusError):
        await d.complete(["a"], CHAT_REQUEST, trace, "")
    assert upstream.calls > 1  # the reserve lets the first request retry
