"""Fixtures for the local-model tests: skip with the install command when a part is missing."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossroads.local import LocalModelServer, locate_model_file
from crossroads.local.catalog import LLAMA_INSTALL, llama_server_installed, local_model


def require_model(name: str) -> None:
    """Skip the test unless llama-cpp-python's server and the model's package are installed."""
    if not llama_server_installed():
        pytest.skip(f"llama-cpp-python[server] is not installed: {LLAMA_INSTALL}")
    model = local_model(name)
    if importlib.util.find_spec(model.module) is None:
        pytest.skip(f"{model.distribution} is not installed: {model.install}")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir shared by the session, so Gemma is assembled once."""
    return tmp_path_factory.mktemp("crossroads-data")


@pytest.fixture(scope="module")
def smollm2_server(data_dir: Path) -> Iterator[LocalModelServer]:
    """A started SmolLM2 server shared by a test module."""
    require_model("smollm2-135m-instruct")
    path = locate_model_file("smollm2-135m-instruct", data_dir)
    server = LocalModelServer("smollm2-135m-instruct", path, log_path=data_dir / "smollm2.log")
    asyncio.run(server.start())
    yield server
    asyncio.run(server.stop())
