"""Run ``crossroads serve`` as a real process on a free loopback port (tests, benchmarks)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    """``with GatewayProcess(config_dict, workdir) as gw:`` → ``gw.base_url`` serves.

    The config is written to ``workdir/config.yaml``; output goes to ``workdir/serve.log``.
    """

    def __init__(
        self, config: dict[str, Any], workdir: Path, *, workers: int = 1, start_timeout: float = 60
    ) -> None:
        self.config = config
        self.workdir = Path(workdir)
        self.workers = workers
        self.start_timeout = start_timeout
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ``http://127.0.0.1:PORT/v1``."""
        return self.url + "/v1"

    @property
    def log(self) -> str:
        """What the server printed so far."""
        path = self.workdir / "serve.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> GatewayProcess:
        """Start and wait until ``/health`` answers (bounded by ``start_timeout``)."""
        import httpx

        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(self.config))
        self.port = free_port()
        env = {**os.environ, "CROSSROADS_DATA_DIR": str(self.workdir / "data")}
        with (self.workdir / "serve.log").open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "crossroads.cli",
                    "serve",
                    "-c",
                    str(config_path),
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"crossroads serve did not start:\n{self.log}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Terminate (then kill) the server."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
