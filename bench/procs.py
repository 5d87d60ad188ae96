"""Processes of a benchmark run: start pinned to cores, wait until ready, measure RSS, stop.

Every process gets a lifetime bound: servers are stopped by the runner (SIGTERM, then
SIGKILL) and the fake upstream also exits by itself after ``--lifetime``.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def pinned(cmd: list[str], cpus: str | None) -> list[str]:
    """``cmd`` run under ``taskset -c cpus`` (unchanged when ``cpus`` is empty or no taskset)."""
    if cpus and shutil.which("taskset"):
        return ["taskset", "-c", cpus, *cmd]
    return cmd


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (closed again; a small race is acceptable here)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _family(pid: int) -> list[int]:
    """``pid`` and its descendants (worker processes)."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        with contextlib.suppress(OSError, ValueError):
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by ``pid`` and its descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in _family(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children, in MB (0 if gone)."""
    total = 0
    for p in _family(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return round(total / 1024, 1)


@dataclass
class Service:
    """A server process under the runner's control."""

    name: str
    cmd: list[str]
    url: str  # OpenAI base URL, ``http://127.0.0.1:PORT/v1``
    health_url: str
    env: dict[str, str] = field(default_factory=dict)
    log: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Service:
        """Start the process and wait (bounded) until ``health_url`` answers 200."""
        env = {**os.environ, **self.env}
        OUT.mkdir(parents=True, exist_ok=True)
        self.log = OUT / f"{self.name}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")
            if self.ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"{self.name} not ready at {self.health_url} after {timeout}s; see {self.log}"
        )

    def ready(self) -> bool:
        """Whether ``health_url`` answers 200 now."""
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(self.health_url, timeout=2) as response,
        ):
            return bool(response.status == 200)
        return False

    @property
    def pid(self) -> int:
        """The process id (the server, or taskset's exec of it)."""
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@dataclass
class AnnouncedService(Service):
    """A server that picks its own port and, once it serves, writes its OpenAI base URL to
    ``ready_file`` (``url`` is read from there; ``health_url`` is unused)."""

    ready_file: Path | None = None

    def start(self, timeout: float = 60.0) -> Service:
        """Start the process and wait (bounded) until it has written ``ready_file``."""
        assert self.ready_file is not None
        self.ready_file.unlink(missing_ok=True)
        return super().start(timeout)

    def ready(self) -> bool:
        """Whether the URL has been announced; sets ``url`` when it has."""
        assert self.ready_file is not None
        if not self.ready_file.exists():
            return False
        self.url = self.ready_file.read_text().strip()
        return True


def start_fake_upstream(cpus: str | None, chunks: int, lifetime: float) -> Service:
    """The fake upstream in its own process; reads its port from the ``READY`` line."""
    cmd = pinned(
        [
            sys.executable,
            "-m",
            "tests.support.fake_upstream",
            "--port",
            "0",
            "--models",
            "fake-small,fake-large",
            "--chunks",
            str(chunks),
            "--lifetime",
            str(lifetime),
            "--name",
            "bench",
        ],
        cpus,
    )
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 15)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"fake upstream did not start: {line!r}")
    base = line.split()[1]
    return Service("fake-upstream", cmd, base, base.removesuffix("/v1") + "/health", proc=proc)


def settle(url: str, model: str, api_key: str, fast: float = 0.5, limit: float = 90.0) -> float:
    """Wait until one request to ``url`` answers within ``fast`` seconds (a backlog left by
    an overload has drained); returns the seconds waited, at most about ``limit``."""
    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "ping"}]})
    headers = {"content-type": "application/json", "authorization": f"Bearer {api_key}"}
    start = time.monotonic()
    while time.monotonic() - start < limit:
        sent = time.monotonic()
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(request, timeout=10) as r,
        ):
            r.read()
            if time.monotonic() - sent < fast:
                break
        time.sleep(0.5)
    return time.monotonic() - start


def open_load(url: str, rate: float, duration: float, warmup: float) -> list[str]:
    """``bench.loadgen`` arguments of an open-loop chat load on the gateway at ``url``."""
    return [
        "--url",
        url + "/chat/completions",
        "--model",
        "auto",
        "--mode",
        "open",
        "--rate",
        str(rate),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
    ]


def run_loadgen(args: list[str], cpus: str | None, timeout: float) -> dict[str, object]:
    """Run ``python -m bench.loadgen args`` pinned to ``cpus``; its JSON summary."""
    cmd = pinned([sys.executable, "-m", "bench.loadgen", *args], cpus)
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return orjson.loads(done.stdout.splitlines()[-1])
