import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from crossroads.exceptions import LocalModelError
from crossroads.local import LocalModelServer
from crossroads.local.server import free_port, http_status

from .conftest import require_model

pytestmark = pytest.mark.local_models


def test_started_server_answers_and_names_the_model(smollm2_server: LocalModelServer) -> None:
    assert smollm2_server.base_url.startswith("http://127.0.0.1:")
    assert asyncio.run(smollm2_server.check_health())
    models = httpx.get(f"{smollm2_server.base_url}/models", timeout=5).json()
    assert [m["id"] for m in models["data"]] == ["smollm2-135m-instruct"]


def test_tiny_chat_generation(smollm2_server: LocalModelServer) -> None:
    response = httpx.post(
        f"{smollm2_server.base_url}/chat/completions",
        json={
            "model": "smollm2-135m-instruct",
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 8,
            "temperature": 0,
        },
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"].strip()
    assert 0 < body["usage"]["completion_tokens"] <= 8
    assert body["usage"]["prompt_tokens"] > 0


def test_killed_server_is_detected(tmp_path: Path) -> None:
    require_model("smollm2-135m-instruct")
    from crossroads.local import locate_model_file

    server = LocalModelServer(
        "smollm2-135m-instruct", locate_model_file("smollm2-135m-instruct"),
        log_path=tmp_path / "smollm2.log",
    )  # fmt: skip

    async def scenario() -> None:
        await server.start()
        port, pid = server.port, server.pid
        assert port is not None and pid is not None
        assert await server.check_health()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while server.is_running() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not server.is_running()
        assert not await server.check_health()
        assert await http_status("127.0.0.1", port, "/v1/models", timeout=1) is None
        await server.stop()  # reaps the dead child, idempotent
        await server.stop()
        assert server.pid is None

    asyncio.run(scenario())


def test_stop_terminates_the_child(tmp_path: Path) -> None:
    require_model("smollm2-135m-instruct")
    from crossroads.local import locate_model_file

    server = LocalModelServer(
        "smollm2-135m-instruct", locate_model_file("smollm2-135m-instruct"),
        log_path=tmp_path / "smollm2.log",
    )  # fmt: skip

    async def scenario() -> int:
        await server.start()
        pid = server.pid
        assert pid is not None
        await server.stop()
        return pid

    pid = asyncio.run(scenario())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "port" in (tmp_path / "smollm2.log").read_text()


def test_a_bad_model_file_fails_fast_with_the_log(tmp_path: Path) -> None:
    require_model("smollm2-135m-instruct")
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a model")
    server = LocalModelServer("bogus", bogus, log_path=tmp_path / "bogus.log", startup_timeout=60)
    started = time.monotonic()
    with pytest.raises(LocalModelError, match="exited with code"):
        asyncio.run(server.start())
    assert time.monotonic() - started < 30
    assert not server.is_running()


def test_nothing_listening_means_no_status() -> None:
    assert asyncio.run(http_status("127.0.0.1", free_port(), "/v1/models", timeout=1)) is None


def test_constructor_does_nothing(tmp_path: Path) -> None:
    server = LocalModelServer("m", tmp_path / "missing.gguf")
    assert server.pid is None and not server.is_running()
    with pytest.raises(LocalModelError, match="not started"):
        _ = server.base_url
