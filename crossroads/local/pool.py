"""The pool of local model servers that ``crossroads serve`` starts and stops with itself."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from crossroads.exceptions import LocalModelError
from crossroads.local.catalog import (
    LLAMA_INSTALL,
    LOCAL_MODELS,
    llama_server_installed,
    locate_model_file,
)
from crossroads.local.paths import data_dir as default_data_dir
from crossroads.local.paths import logs_dir
from crossroads.local.server import LocalModelServer
from crossroads.local.supervisor import Supervisor


class LocalModelPool:
    """One managed llama.cpp server per local model, started and stopped together.

    >>> pool = LocalModelPool(["smollm2-135m-instruct", "gemma-3-270m"])
    >>> # urls = await pool.start()  # {"smollm2-135m-instruct": "http://127.0.0.1:PORT/v1", ...}
    >>> # await pool.stop()
    """

    def __init__(
        self,
        models: Sequence[str] | None = None,
        *,
        data_dir: Path | None = None,
        n_ctx: int = 2048,
        n_threads: int = 1,
        startup_timeout: float = 120.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.models = models
        self.data_dir = data_dir
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.servers: dict[str, LocalModelServer] = {}
        self.supervisor: Supervisor | None = None

    @property
    def base_urls(self) -> dict[str, str]:
        """``{model name: base URL}`` of the servers started so far."""
        return {name: server.base_url for name, server in self.servers.items() if server.port}

    async def start(self) -> dict[str, str]:
        """Locate every model file, start one server per model concurrently, wait until all
        answer, and return ``{model name: base URL}``. If one fails, stops the others and
        raises :class:`LocalModelError`."""
        names = list(self.models) if self.models is not None else list(LOCAL_MODELS)
        if not llama_server_installed():
            raise LocalModelError(f"Local models need llama-cpp-python's server. {LLAMA_INSTALL}")
        base = self.data_dir or default_data_dir()
        # Assembling Gemma reads and hashes ~250 MB the first time: keep it off the loop.
        paths = await asyncio.gather(
            *(asyncio.to_thread(locate_model_file, name, base) for name in names)
        )
        logs = logs_dir(base)
        for name, path in zip(names, paths, strict=True):
            self.servers[name] = LocalModelServer(
                name, path, n_ctx=self.n_ctx, n_threads=self.n_threads,
                chat_format=LOCAL_MODELS[name].chat_format,
                log_path=logs / f"{name}.log", startup_timeout=self.startup_timeout,
                stop_timeout=self.stop_timeout,
            )  # fmt: skip
        results = await asyncio.gather(
            *(server.start() for server in self.servers.values()), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.stop()
            raise failures[0]
        return self.base_urls

    def supervise(self, interval: float = 1.0, max_restarts: int = 5) -> Supervisor:
        """Restart servers that die, from a background thread, until :meth:`stop`."""
        if self.supervisor is None:
            self.supervisor = Supervisor(self.servers, interval=interval, max_restarts=max_restarts)
        self.supervisor.start()
        return self.supervisor

    async def stop(self) -> None:
        """Stop the supervisor, then every server (terminate, then kill after
        ``stop_timeout``); idempotent."""
        if self.supervisor is not None:
            await asyncio.to_thread(self.supervisor.stop, self.startup_timeout)
        await asyncio.gather(*(server.stop() for server in self.servers.values()))

    async def health(self, timeout: float = 2.0) -> dict[str, bool]:
        """``{model name: answers /v1/models}`` for every server of the pool."""
        names = list(self.servers)
        checks = await asyncio.gather(*(self.servers[n].check_health(timeout) for n in names))
        return dict(zip(names, checks, strict=True))

    async def __aenter__(self) -> LocalModelPool:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
