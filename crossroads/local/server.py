"""One managed ``llama_cpp.server`` subprocess serving one GGUF model on loopback.

A llama.cpp server that holds several models reloads weights whenever requests switch
between them, so crossroads runs one process per model, each with one thread (two
threads per model collapse under contention on small machines; see docs/local-models.md).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import socket
import subprocess
import sys
import time
import weakref
from pathlib import Path

from crossroads.exceptions import LocalModelError
from crossroads.local._serve import PARENT_PID_ENV

HOST = "127.0.0.1"
# The child reads settings from the environment too (pydantic-settings: MODEL, PORT,
# API_KEY, ...), so it gets only what a Python process needs, never the caller's secrets.
_ENV_PASSTHROUGH = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "LD_LIBRARY_PATH",
    "SYSTEMROOT",
)
_RUNNING: weakref.WeakSet[LocalModelServer] = weakref.WeakSet()


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` right now (the caller retries if it is taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def http_status(host: str, port: int, path: str, timeout: float) -> int | None:
    """Status code of ``GET path`` on ``host:port``, or None if nothing answers in time."""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            status_line = await reader.readline()
    except (OSError, TimeoutError):
        return None
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    parts = status_line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


class LocalModelServer:
    """A ``llama_cpp.server`` child process for one model; ``await start()`` returns its URL.

    >>> server = LocalModelServer("smollm2-135m-instruct", Path("model.gguf"))
    >>> # base_url = await server.start(); ...; await server.stop()
    """

    def __init__(
        self,
        name: str,
        model_path: Path,
        *,
        n_ctx: int = 2048,
        n_threads: int = 1,
        chat_format: str | None = None,
        log_path: Path | None = None,
        startup_timeout: float = 120.0,
        stop_timeout: float = 5.0,
        port_attempts: int = 3,
    ) -> None:
        self.name = name
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.chat_format = chat_format
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.port_attempts = port_attempts
        self.port: int | None = None
        self.last_port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``http://127.0.0.1:PORT/v1``) once started."""
        if self.port is None:
            raise LocalModelError(f"Local model server {self.name!r} is not started; call start()")
        return f"http://{HOST}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        """The child's process id, while it exists."""
        return self._process.pid if self._process is not None else None

    def command(self, port: int) -> list[str]:
        """The child's command line."""
        return [
            sys.executable, "-m", "crossroads.local._serve",
            "--model", str(self.model_path),
            "--model_alias", self.name,
            "--host", HOST,
            "--port", str(port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads),
            "--n_threads_batch", str(self.n_threads),
            "--n_gpu_layers", "0",
        ] + (["--chat_format", self.chat_format] if self.chat_format else [])  # fmt: skip

    async def restart(self) -> str:
        """Start a dead (or stopped) child again on the port it last had, so the base URL
        handed out stays valid; returns it."""
        if self.last_port is None:
            raise LocalModelError(f"Local model server {self.name!r} was never started")
        await self.stop()
        return await self.start(self.last_port)

    def is_running(self) -> bool:
        """Whether the child process is alive (it may still be loading)."""
        return self._process is not None and self._process.poll() is None

    async def check_health(self, timeout: float = 2.0) -> bool:
        """Whether the child is alive and answers ``GET /v1/models`` with 200."""
        if not self.is_running() or self.port is None:
            return False
        return await http_status(HOST, self.port, "/v1/models", timeout) == 200

    async def start(self, port: int | None = None) -> str:
        """Start the child on ``port`` (default: a free one), wait until it serves, and
        return its base URL.

        Raises :class:`LocalModelError` with the end of its log if it exits or does not
        answer within ``startup_timeout`` seconds.
        """
        if self.is_running():
            return self.base_url
        attempts = 1 if port is not None else self.port_attempts
        for attempt in range(1, attempts + 1):
            self._spawn(port if port is not None else free_port())
            try:
                await self._wait_ready()
                return self.base_url
            except _PortTaken:
                if attempt == attempts:
                    raise LocalModelError(
                        f"Local model server {self.name!r} found no free port after "
                        f"{attempt} attempt(s); see {self.log_path}"
                    ) from None
            except BaseException:
                await self.stop()
                raise
        raise AssertionError("unreachable")

    async def stop(self) -> None:
        """Terminate the child, kill it after ``stop_timeout`` seconds; idempotent."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            deadline = time.monotonic() + self.stop_timeout
            while process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if process.poll() is None:
                process.kill()
                await asyncio.to_thread(process.wait, self.stop_timeout)
        self._close()

    def stop_now(self) -> None:
        """Synchronous :meth:`stop`, for ``atexit`` and signal handlers."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(self.stop_timeout)
        self._close()

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the child's log, for error messages."""
        if self.log_path is None:
            return ""
        try:
            with self.log_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 8192))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _spawn(self, port: int) -> None:
        self._close()
        env = {k: v for k, v in os.environ.items() if k in _ENV_PASSTHROUGH}
        env.update({"OMP_NUM_THREADS": str(self.n_threads), PARENT_PID_ENV: str(os.getpid())})
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = self.log_path.open("ab")
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} port {port}\n".encode())
            log.flush()
        else:
            log = open(os.devnull, "wb")  # noqa: SIM115 - closed right after Popen
        try:
            # Popen, not asyncio's subprocess API: the child must be stoppable from atexit,
            # after the event loop is gone.
            self._process = subprocess.Popen(
                self.command(port), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=env, cwd=self.model_path.parent,
                start_new_session=True,  # Ctrl-C reaches the gateway, which stops us in order
            )  # fmt: skip
        except OSError as exc:
            raise LocalModelError(
                f"Could not start {sys.executable} for {self.name!r}: {exc}"
            ) from exc
        finally:
            log.close()
        self.port = self.last_port = port
        _RUNNING.add(self)

    async def _wait_ready(self) -> None:
        assert self._process is not None and self.port is not None
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.05
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                tail = self.log_tail()
                if "address already in use" in tail.lower():
                    raise _PortTaken
                raise LocalModelError(
                    f"Local model server {self.name!r} exited with code {code} while starting "
                    f"(log: {self.log_path}):\n{tail}"
                )
            if await http_status(HOST, self.port, "/v1/models", timeout=1.0) == 200:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
        raise LocalModelError(
            f"Local model server {self.name!r} did not answer on port {self.port} within "
            f"{self.startup_timeout:.0f}s (log: {self.log_path}):\n{self.log_tail()}"
        )

    def _close(self) -> None:
        self._process = None
        self.port = None
        _RUNNING.discard(self)


class _PortTaken(Exception):
    """The free port we picked was taken before the child bound it."""


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.stop_now()
