from __future__ import annotations

from crossroads.config import parse_config
from crossroads.prompts import routing_request
from crossroads.signals import build_signal


def test_metadata_endpoint_source_tells_completions_from_chat() -> None:
    cfg = parse_config(
        {
            "upstreams": [{"name": "u", "base_url": "http://x/v1"}],
            "models": [{"name": "a", "upstream": "u"}],
            "signals": [
                {"kind": "metadata", "name": "c", "source": "endpoint", "values": ["completions"]}
            ],
        }
    )
    sig = build_signal(cfg.signals[0])
    chat = routing_request({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    text = routing_request({"model": "auto", "prompt": "Once upon a time"}, "completions")
    assert not sig.compute(chat).matched
    result = sig.compute(text)
    assert result.matched and result.value == "completions"
