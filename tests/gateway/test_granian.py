"""The gateway served by granian (``server.engine: granian``), used with the openai SDK."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import openai
import pytest

from crossroads.testing.fake_upstream import FakeUpstream
from crossroads.testing.gateway_process import GatewayProcess

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("granian") is None,
    reason="granian is not installed: pip install 'crossroads[granian]'",
)


def test_granian_engine_serves_stream_and_non_stream(tmp_path: Path) -> None:
    with FakeUpstream(models=["s"], chunks=3) as upstream:
        config = {
            "server": {"engine": "granian"},
            "upstreams": [{"name": "fake", "base_url": upstream.base_url}],
            "models": [{"name": "small", "upstream": "fake", "upstream_model": "s"}],
            "store": {"traces": f"sqlite:///{tmp_path / 'traces.db'}"},
        }
        with GatewayProcess(config, tmp_path) as gateway:
            client = openai.OpenAI(
                base_url=gateway.base_url, api_key="-", max_retries=0, timeout=20
            )
            raw = client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": "hi"}]
            )
            assert raw.headers["x-crossroads-model"] == "small"
            assert raw.parse().choices[0].message.content == "echo: hi"
            chunks = list(
                client.chat.completions.create(
                    model="auto", messages=[{"role": "user", "content": "there"}], stream=True
                )
            )
            assert (
                "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                == "echo: there"
            )
            with pytest.raises(openai.BadRequestError):
                client.chat.completions.create(model="auto", messages=[])
