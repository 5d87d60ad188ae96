"""What ``crossroads serve`` says at start-up."""

from __future__ import annotations

import contextlib

from crossroads.serve import banner
from tests.conftest import routing_config


def test_an_open_address_without_keys_is_warned_about() -> None:
    cfg = routing_config("http://127.0.0.1:9/v1")
    assert "WARNING" in banner(cfg, "0.0.0.0", 8400, 1)
    assert "WARNING" not in banner(cfg, "127.0.0.1", 8400, 1)
    assert "WARNING" not in banner(cfg, "::1", 8400, 1)


def test_sigterm_waits_for_open_requests_only_as_long_as_configured(
    fake_upstream, tmp_path
) -> None:
    """A stream that never ends does not hold a shutting-down gateway: after
    ``server.shutdown_timeout_s`` it is cut and the process exits."""
    import signal
    import threading
    import time

    import httpx

    from tests.support.gateway_process import GatewayProcess

    config = {
        "upstreams": [{"name": "fake", "base_url": fake_upstream.base_url}],
        "models": [{"name": "small", "upstream": "fake", "upstream_model": "s"}],
        "default": {"models": ["small"]},
        "server": {"shutdown_timeout_s": 1},
        "store": {"traces": "memory"},
    }
    fake_upstream.set_fault("hang")
    with GatewayProcess(config, tmp_path) as gw:

        def open_request() -> None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(
                    gw.base_url + "/chat/completions",
                    json={"model": "small", "messages": [{"role": "user", "content": "hi"}]},
                    timeout=60,
                )

        client = threading.Thread(target=open_request, daemon=True)
        client.start()
        deadline = time.monotonic() + 10
        while fake_upstream.stats()["in_flight"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fake_upstream.stats()["in_flight"] == 1
        proc = gw.proc
        assert proc is not None
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        took = time.monotonic() - began
    assert took < 10, f"shutdown took {took:.1f} s with shutdown_timeout_s = 1"
