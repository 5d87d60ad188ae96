"""Benchmark targets: TensorZero's config, servers that announce their own URL, and (when
``bench/.venv-tensorzero`` is installed) TensorZero's gateway in front of the fake upstream."""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from bench.procs import AnnouncedService
from bench.targets import TENSORZERO_MODEL, TENSORZERO_VENV, tensorzero_service
from bench.tensorzero_gateway import render_config
from tests.support import FakeUpstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(chunks=3) as up:
        yield up


def test_tensorzero_config_routes_each_model_to_the_upstream() -> None:
    config = tomllib.loads(render_config("http://127.0.0.1:9/v1", ["fake-small", "a.b"]))
    assert config["gateway"]["observability"]["enabled"] is False
    assert set(config["models"]) == {"fake-small", "a.b"}  # a dotted name stays one key
    provider = config["models"]["a.b"]["providers"]["fake"]
    assert config["models"]["a.b"]["routing"] == ["fake"]
    assert provider == {
        "type": "openai",
        "api_base": "http://127.0.0.1:9/v1",
        "model_name": "a.b",
        "api_key_location": "none",
    }


ANNOUNCER = """
import http.server, pathlib, sys, threading
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
ready = pathlib.Path(sys.argv[1])
ready.with_suffix(".partial").write_text(f"http://127.0.0.1:{server.server_port}/v1")
ready.with_suffix(".partial").replace(ready)
server.serve_forever()
"""


def test_announced_service_reads_its_url_from_the_ready_file(tmp_path: Path) -> None:
    ready = tmp_path / "url"
    ready.write_text("http://stale.invalid/v1")  # left by an earlier run: must not be trusted
    cmd = [sys.executable, "-c", ANNOUNCER, str(ready)]
    service = AnnouncedService("announcer", cmd, "", "", ready_file=ready)
    service.start(timeout=30)
    try:
        assert service.url.startswith("http://127.0.0.1:") and service.url.endswith("/v1")
        assert service.proc is not None and service.proc.poll() is None
    finally:
        service.stop()
    assert service.proc.poll() is not None


def test_announced_service_that_dies_says_so(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "import sys; print('no config'); sys.exit(3)"]
    service = AnnouncedService("dies", cmd, "", "", ready_file=tmp_path / "url")
    with pytest.raises(RuntimeError, match="dies exited with 3:\nno config"):
        service.start(timeout=30)


@pytest.mark.skipif(
    not (TENSORZERO_VENV / ".installed").exists(),
    reason="bench/.venv-tensorzero is not installed (python -m bench --targets tensorzero does it)",
)
@pytest.mark.parametrize("stream", [False, True])
def test_tensorzero_gateway_answers_through_the_fake_upstream(
    upstream: FakeUpstream, stream: bool
) -> None:
    service = tensorzero_service(upstream.base_url, cpus=None).start(timeout=60)
    try:
        client = openai.OpenAI(base_url=service.url, api_key="-", max_retries=0, timeout=10)
        request = {
            "model": TENSORZERO_MODEL.format("fake-small"),
            "messages": [{"role": "user", "content": "hello there"}],
        }
        if stream:
            chunks = list(client.chat.completions.create(**request, stream=True))
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            text = client.chat.completions.create(**request).choices[0].message.content or ""
    finally:
        service.stop()
    assert text == "echo: hello there"


def test_the_version_of_a_venv_not_installed_is_unknown(tmp_path: Path) -> None:
    from bench.targets import venv_version

    assert venv_version(tmp_path / "no-venv", "litellm") == "?"
