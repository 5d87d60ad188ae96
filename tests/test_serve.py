"""What ``crossroads serve`` says at start-up."""

from __future__ import annotations

from crossroads.serve import banner
from tests.conftest import routing_config


def test_an_open_address_without_keys_is_warned_about() -> None:
    cfg = routing_config("http://127.0.0.1:9/v1")
    assert "WARNING" in banner(cfg, "0.0.0.0", 8400, 1)
    assert "WARNING" not in banner(cfg, "127.0.0.1", 8400, 1)
    assert "WARNING" not in banner(cfg, "::1", 8400, 1)
