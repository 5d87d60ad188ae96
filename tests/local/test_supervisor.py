import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from crossroads.local import LocalModelServer, locate_model_file
from crossroads.local.supervisor import Supervisor

from .conftest import require_model

pytestmark = pytest.mark.local_models


def _killed(server: LocalModelServer) -> None:
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.is_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not server.is_running()


def test_a_dead_server_comes_back_on_its_port_within_budget(tmp_path: Path) -> None:
    require_model("smollm2-135m-instruct")
    server = LocalModelServer(
        "smollm2-135m-instruct", locate_model_file("smollm2-135m-instruct"),
        log_path=tmp_path / "smollm2.log",
    )  # fmt: skip
    url = asyncio.run(server.start())
    supervisor = Supervisor({"smollm2-135m-instruct": server}, max_restarts=1)
    try:
        assert supervisor.check_once() == []  # alive: nothing to do
        first_pid = server.pid
        _killed(server)
        assert supervisor.check_once() == ["smollm2-135m-instruct"]
        assert server.base_url == url and server.pid != first_pid
        assert asyncio.run(server.check_health())
        _killed(server)
        assert supervisor.check_once() == []  # budget spent: left down, fallback serves
        assert supervisor.restarts == {"smollm2-135m-instruct": 1}
    finally:
        supervisor.stop()
        asyncio.run(server.stop())


def test_the_watch_thread_restarts_and_stops(tmp_path: Path) -> None:
    require_model("smollm2-135m-instruct")
    server = LocalModelServer(
        "smollm2-135m-instruct", locate_model_file("smollm2-135m-instruct"),
        log_path=tmp_path / "smollm2.log",
    )  # fmt: skip
    asyncio.run(server.start())
    supervisor = Supervisor({"smollm2-135m-instruct": server}, interval=0.1)
    supervisor.start()
    try:
        first_pid = server.pid
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)  # the thread may restart it at once
        deadline = time.monotonic() + 60
        while supervisor.restarts["smollm2-135m-instruct"] == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert supervisor.restarts["smollm2-135m-instruct"] == 1
        assert server.pid != first_pid
        assert asyncio.run(server.check_health())
    finally:
        supervisor.stop()
        asyncio.run(server.stop())
    assert not server.is_running()
