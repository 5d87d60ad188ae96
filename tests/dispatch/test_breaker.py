from __future__ import annotations

from crossroads.config import BreakerConfig
from crossroads.dispatch.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_recovers_through_a_probe() -> None:
    clock = Clock()
    b = CircuitBreaker(BreakerConfig(consecutive_failures=3, open_s=10), clock)
    for _ in range(2):
        assert b.acquire()
        b.failure("500")
    assert b.state == "closed"
    b.failure("500")
    assert b.state == "open" and not b.available() and not b.acquire()
    assert "3 consecutive failures" in b.reason and b.retry_after() == 10
    clock.now = 10
    assert b.available()
    assert b.acquire() and b.state == "half_open"
    assert not b.acquire()  # one probe at a time
    b.success()
    assert b.state == "closed" and b.acquire()


def test_failed_probe_reopens() -> None:
    clock = Clock()
    b = CircuitBreaker(BreakerConfig(consecutive_failures=1, open_s=5), clock)
    b.failure("x")
    clock.now = 5
    assert b.acquire()
    b.failure("still down")
    assert b.state == "open" and b.retry_after() == 5 and "probe failed" in b.reason


def test_error_rate_over_window_opens_without_consecutive_failures() -> None:
    clock = Clock()
    b = CircuitBreaker(
        BreakerConfig(consecutive_failures=100, error_rate=0.5, min_requests=10, window_s=30), clock
    )
    for i in range(10):
        clock.now = i
        if i % 2:
            b.failure("x")
        else:
            b.success()
    assert b.state == "open"


def test_old_results_leave_the_window() -> None:
    clock = Clock()
    b = CircuitBreaker(
        BreakerConfig(consecutive_failures=100, error_rate=0.5, min_requests=4, window_s=10), clock
    )
    for _ in range(3):
        b.failure("x")
        b.success()
    clock.now = 100
    b.failure("x")  # the earlier failures are out of the window: 1 of 1 < min_requests
    assert b.state == "closed"


def test_cancelled_probe_frees_its_slot() -> None:
    clock = Clock()
    b = CircuitBreaker(BreakerConfig(consecutive_failures=1, open_s=1), clock)
    b.failure("x")
    clock.now = 1
    assert b.acquire()
    b.release_probe()
    assert b.acquire()


async def test_a_streaming_probe_closes_the_breaker_at_its_first_content() -> None:
    """A half-open endpoint probed by a long stream takes other requests as soon as the
    stream's first content arrives, not only when the stream ends."""
    import asyncio

    from crossroads.config import parse_config
    from crossroads.dispatch.base import Completion
    from crossroads.dispatch.dispatcher import Dispatcher
    from crossroads.types import Message, Request, Trace, Usage

    release = asyncio.Event()

    class Slow:
        name = "u"

        async def complete(self, endpoint, body):  # type: ignore[no-untyped-def]
            return Completion(b"{}", Usage(1, 1))

        async def stream(self, endpoint, body):  # type: ignore[no-untyped-def]
            yield b'data: {"choices": [{"index": 0, "delta": {"content": "hi"}}]}\n\n'
            await release.wait()
            yield b"data: [DONE]\n\n"

    cfg = parse_config(
        {
            "upstreams": [{"name": "u", "base_url": "http://x/v1"}],
            "models": [{"name": "a", "upstream": "u"}],
            "dispatch": {"breaker": {"half_open_probes": 1, "open_s": 0.01}},
        }
    )
    d = Dispatcher(cfg, {"u": Slow()}).prepare()  # type: ignore[dict-item]
    breaker = d.endpoints_["a"][0].breaker
    breaker._open(breaker.clock() - 1, "test")
    request = Request("chat", "a", "openai_chat", [Message("user", "x")])
    stream = await d.open_stream(["a"], request, Trace("p", 0, "", "chat", True), "")
    try:
        result, _, _ = await d.complete(["a"], request, Trace("q", 0, "", "chat", False), "")
        assert result.body == b"{}"
        assert breaker.state == "closed"
    finally:
        release.set()
        await stream.aclose(True)


def test_reasons_name_failure_categories_never_error_text() -> None:
    clock = Clock()
    b = CircuitBreaker(BreakerConfig(consecutive_failures=5, open_s=1), clock)
    for category in ("timeout", "http_503", "timeout", "connect"):
        b.failure(category)
    # Text of a request's error (another client's data, the upstream's words) is no category.
    b.failure("upstream 'a' failed (500): alice@example.com leaked")
    assert b.state == "open"
    assert b.reason == "5 consecutive failures: timeout/http_503/connect/error"
    clock.now = 1
    assert b.acquire()
    b.failure("http_500")
    assert b.reason == "probe failed: http_500"


def test_error_rate_reason_lists_the_categories_in_the_window() -> None:
    b = CircuitBreaker(
        BreakerConfig(consecutive_failures=100, error_rate=0.5, min_requests=4, window_s=30),
        Clock(),
    )
    b.success()
    b.failure("http_502")
    b.success()
    b.failure("timeout")
    assert b.state == "open" and b.reason == "2/4 calls failed in 30 s: http_502/timeout"
