"""The image (Dockerfile, deploy/docker/entrypoint.sh): what it installs and how it runs.

The entrypoint and the HEALTHCHECK command run here as they run in the container, against a
real gateway and the fake upstream; the image itself is built and run only where a Docker
engine answers (none does on the project's machines, so that test skips there)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.support import FakeUpstream
from tests.support.gateway_process import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
ENTRYPOINT = ROOT / "deploy" / "docker" / "entrypoint.sh"


def _healthcheck() -> list[str]:
    """The HEALTHCHECK's command, as the Dockerfile's JSON array."""
    found = re.search(r"^HEALTHCHECK [^\n]*\\\n\s*CMD (\[.*\])$", DOCKERFILE, re.MULTILINE)
    assert found, "the Dockerfile has no HEALTHCHECK ... CMD [...]"
    command: list[str] = json.loads(found.group(1))
    return command


def _config(upstream: str) -> dict[str, object]:
    return {
        "store": {"traces": "sqlite"},
        "upstreams": [{"name": "fake", "base_url": upstream}],
        "models": [{"name": "fake-small", "upstream": "fake"}],
        "default": {"models": ["fake-small"]},
    }


@pytest.fixture
def shim(tmp_path: Path) -> Path:
    """A ``crossroads`` on PATH that runs this checkout's package (as the image's venv does)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "crossroads"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m crossroads.cli "$@"\n')
    exe.chmod(0o755)
    return bin_dir


def _env(shim: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    path = f"{shim}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "PATH": path, "CROSSROADS_DATA_DIR": str(tmp_path / "data"), **extra}


def test_the_image_installs_this_checkout_slim_and_unprivileged() -> None:
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.\d+-slim", DOCKERFILE, re.MULTILINE)
    assert "COPY crossroads ./crossroads" in DOCKERFILE
    assert 'pip install "/src' in DOCKERFILE  # the copied tree, never crossroads from PyPI
    assert not re.search(r"pip install[^\n]*\bcrossroads\b", DOCKERFILE)
    user = re.search(r"^USER (\d+):(\d+)$", DOCKERFILE, re.MULTILINE)
    assert user and user.group(1) != "0"
    assert DOCKERFILE.rstrip().endswith('ENTRYPOINT ["crossroads-entrypoint"]')
    assert "/health" in " ".join(_healthcheck())


def test_dockerignore_lets_every_copied_path_through() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    sources = re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, re.MULTILINE)
    assert sources
    for source in (s for line in sources for s in line.split()):
        assert any(source == a or source.startswith(a + "/") for a in allowed), source
    assert ENTRYPOINT.stat().st_mode & 0o111, "the entrypoint must be executable"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(models=["fake-small"], chunks=2) as up:
        yield up


def test_entrypoint_serves_the_mounted_config_and_passes_the_healthcheck(
    upstream: FakeUpstream, shim: Path, tmp_path: Path
) -> None:
    config = tmp_path / "crossroads.yaml"
    config.write_text(yaml.safe_dump(_config(upstream.base_url)))
    port = free_port()
    env = _env(
        shim,
        tmp_path,
        CROSSROADS_CONFIG_FILE=str(config),
        CROSSROADS_HOST="127.0.0.1",  # the image's 0.0.0.0 is not needed to test here
        CROSSROADS_PORT=str(port),
    )
    health = _healthcheck()
    assert subprocess.run(health, env=env, capture_output=True, timeout=30).returncode != 0
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([str(ENTRYPOINT)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(health, env=env, capture_output=True, timeout=30).returncode != 0:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "the healthcheck never passed"
            time.sleep(0.3)
        assert httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-", max_retries=0)
        reply = client.chat.completions.create(
            model="fake-small", messages=[{"role": "user", "content": "from the pod"}]
        )
        assert reply.choices[0].message.content == "echo: from the pod"
        proc.send_signal(signal.SIGTERM)  # what the kubelet and `docker stop` send
        # uvicorn drains, then re-raises the signal: the exit status says SIGTERM, not SIGKILL
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


def test_entrypoint_refuses_a_config_file_that_is_not_there(shim: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    env = _env(shim, tmp_path, CROSSROADS_CONFIG_FILE=str(missing))
    done = subprocess.run([str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 64
    assert f"CROSSROADS_CONFIG_FILE={missing} is not a file" in done.stderr


def test_entrypoint_runs_other_commands(shim: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_config("http://127.0.0.1:9/v1")))
    env = _env(shim, tmp_path)
    done = subprocess.run(
        [str(ENTRYPOINT), "validate", str(config)], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0 and "✓" in done.stdout.decode()


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    return done.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _docker_engine(), reason="no Docker engine answers `docker info`")
def test_the_image_builds_runs_unprivileged_and_turns_healthy(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    tag = f"crossroads-test:{uuid.uuid4().hex[:8]}"
    name = f"crossroads-test-{uuid.uuid4().hex[:8]}"
    build = subprocess.run(
        ["docker", "build", "-t", tag, str(ROOT)], capture_output=True, text=True, timeout=900
    )
    assert build.returncode == 0, build.stderr[-3000:]
    config = tmp_path / "crossroads.yaml"
    config.write_text(yaml.safe_dump(_config(upstream.base_url)))
    config.chmod(0o644)
    port = free_port()
    try:
        run = [
            "docker", "run", "-d", "--name", name, "--network", "host",
            "-e", "CROSSROADS_HOST=127.0.0.1", "-e", f"CROSSROADS_PORT={port}",
            "-v", f"{config}:/etc/crossroads/crossroads.yaml:ro", tag,
        ]  # fmt: skip
        assert subprocess.run(run, capture_output=True, timeout=60).returncode == 0
        inspect = ["docker", "inspect", "--format", "{{.State.Health.Status}}", name]
        deadline, status = time.monotonic() + 120, ""
        while status != "healthy" and time.monotonic() < deadline:
            time.sleep(1)
            status = subprocess.run(inspect, capture_output=True, text=True).stdout.strip()
        assert status == "healthy"
        uid = subprocess.run(["docker", "exec", name, "id", "-u"], capture_output=True, text=True)
        assert uid.stdout.strip() == "10001"
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-", max_retries=0)
        reply = client.chat.completions.create(
            model="fake-small", messages=[{"role": "user", "content": "in a container"}]
        )
        assert reply.choices[0].message.content == "echo: in a container"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=120)
