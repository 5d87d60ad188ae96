"""What ``crossroads serve`` says at start-up."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

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


def test_workers_share_a_fresh_metrics_dir_removed_at_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crossroads.config import parse_config
    from crossroads.observe.workers import DIR_ENV
    from crossroads.serve import _metrics_dir

    cfg = parse_config(
        {"upstreams": [{"name": "u", "kind": "mock"}], "models": [{"name": "m", "upstream": "u"}]}
    )
    monkeypatch.delenv(DIR_ENV, raising=False)
    with _metrics_dir(cfg):
        made = Path(os.environ[DIR_ENV])
        assert made.is_dir()
    assert not made.exists() and DIR_ENV not in os.environ
    given = tmp_path / "given"
    given.mkdir()
    (given / "worker-123.json").write_text("{}")  # an earlier run's counts
    monkeypatch.setenv(DIR_ENV, str(given))
    with _metrics_dir(cfg):
        assert list(given.iterdir()) == []
    assert given.is_dir()
