"""Hot reload: serve a changed config file and freshly read router artifacts without a restart.

A reload (``SIGHUP``, or ``POST /v1/crossroads/admin/reload`` with the admin key) reads the
config file again, validates it and builds everything routing needs (signals, decisions,
selectors, which load their router artifacts, plans, the dispatcher) before anything
changes. Any failure leaves the old config serving and is answered with its reason. Then the
gateway switches in one step: requests already running finish on the old engine, new ones
use the new. Upstream clients whose settings did not change are kept (and with them their
connections, load and circuit state when models and dispatch did not change either); the
others are closed once the last request on the old engine is done.

Sections that only a restart applies (:data:`RESTART_ONLY`) must be unchanged: a reload
that changes them is refused, naming them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from crossroads.exceptions import ConfigError, RequestError

if TYPE_CHECKING:
    from crossroads.config import Config
    from crossroads.dispatch.base import Upstream
    from crossroads.engine import Engine
    from crossroads.gateway.app import Gateway

log = logging.getLogger("crossroads.reload")

# Listening sockets, workers, keys, stores, telemetry and shared state are set up once.
RESTART_ONLY = ("server", "store", "metrics", "opentelemetry", "state", "teams")
RETIRE_POLL_S = 0.1


class ReloadRefused(RequestError):
    """422: the config on disk cannot be served (invalid, or it changes a restart-only
    section); the old config keeps serving."""

    status = 422
    code = "reload_refused"


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """The sections of :data:`RESTART_ONLY` that differ between ``old`` and ``new``."""
    return [name for name in RESTART_ONLY if getattr(old, name) != getattr(new, name)]


class Reloader:
    """Reloads ``gateway``'s config: one reload at a time, counted in :attr:`generation`."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.generation = 0
        self._lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()
        self._unused: list[Upstream] = []  # replaced clients not closed yet
        self._signalled = False

    def listen(self) -> None:
        """Reload on SIGHUP (in the main thread of a process serving a config file)."""
        if (
            self.gateway.config_path is None
            or threading.current_thread() is not threading.main_thread()
        ):
            return
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self._on_signal)
            self._signalled = True

    def _on_signal(self) -> None:
        task = asyncio.get_running_loop().create_task(self._logged())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _logged(self) -> None:
        try:
            done = await self.reload()
        except RequestError as exc:
            log.error("SIGHUP: the reload was refused; the old config keeps serving: %s", exc)
            return
        log.warning("SIGHUP: reloaded %s (generation %d)", done["config"], done["generation"])

    async def reload(self, config: Config | None = None) -> dict[str, Any]:
        """Validate ``config`` (default: the config file read again) and serve it; raises
        :class:`ReloadRefused` and keeps the old config when it cannot be served."""
        async with self._lock:
            started = time.perf_counter()
            gateway = self.gateway
            if config is None:
                config = self._read()
            changed = restart_only_changes(gateway.config, config)
            if changed:
                raise ReloadRefused(
                    f"The new config changes {', '.join(changed)}, which only a restart "
                    "applies; the old config keeps serving. Restart the gateway, or undo "
                    "those changes and reload again."
                )
            old_engine = gateway.engine
            old_upstreams = gateway.upstreams
            try:
                upstreams, dispatcher, pipeline = await self._build(config)
            except Exception as exc:
                raise ReloadRefused(
                    f"The new config cannot be served ({type(exc).__name__}: {exc}); the old "
                    "config keeps serving."
                ) from exc
            if dispatcher is not gateway.dispatcher:
                await self._replace_fleet(config, dispatcher)
            gateway.limits.reconfigure(config)
            gateway.install(config, upstreams, dispatcher, pipeline)
            gateway.dashboard.prepare()
            if gateway.metrics is not None:  # new entrypoints and models become labels
                gateway.metrics.requests.label_names(frozenset(pipeline.model_names()))
            self.generation += 1
            unused = [u for name, u in old_upstreams.items() if upstreams.get(name) is not u]
            self._unused += unused
            task = asyncio.get_running_loop().create_task(self._retire(old_engine, unused))
            del old_engine
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
            return {
                "object": "crossroads.reload",
                "generation": self.generation,
                "config": str(gateway.config_path) if gateway.config_path else None,
                "decisions": [d.name for d in config.decisions],
                "routers": pipeline.served_routers(),
                "upstreams_replaced": sorted(u.name for u in unused),
                "seconds": round(time.perf_counter() - started, 3),
            }

    def _read(self) -> Config:
        from crossroads.config import load_config

        path = self.gateway.config_path
        if path is None:
            raise ReloadRefused(
                "This gateway was not started from a config file (crossroads serve -c FILE), "
                "so there is nothing to read again."
            )
        try:
            return load_config(path)
        except ConfigError as exc:
            raise ReloadRefused(
                f"The config file is invalid; the old config keeps serving. {exc}"
            ) from exc
        except OSError as exc:
            raise ReloadRefused(f"Cannot read the config file {path}: {exc}") from exc

    async def _build(self, config: Config) -> tuple[dict[str, Upstream], Any, Any]:
        """Upstream clients, dispatcher and pipeline for ``config``, reusing what did not
        change; the pipeline (which loads router artifacts) is built in a worker thread."""
        from crossroads.dispatch.dispatcher import Dispatcher
        from crossroads.gateway.app import build_upstream
        from crossroads.pipeline import Pipeline

        gateway = self.gateway
        old = gateway.config
        same_dispatch = (old.upstreams, old.models, old.dispatch) == (
            config.upstreams,
            config.models,
            config.dispatch,
        )
        if same_dispatch:
            upstreams, dispatcher = gateway.upstreams, gateway.dispatcher
        else:
            before = {u.name: u for u in old.upstreams}
            upstreams = {
                u.name: gateway.upstreams[u.name]
                if before.get(u.name) == u
                else gateway._upstream_overrides.get(u.name) or build_upstream(u)
                for u in config.upstreams
            }
            try:
                dispatcher = Dispatcher(config, upstreams).prepare()
            except Exception:
                await _close([u for n, u in upstreams.items() if gateway.upstreams.get(n) is not u])
                raise
        pipeline = Pipeline(config, availability=dispatcher.unavailable)
        try:
            await asyncio.to_thread(pipeline.prepare)
        except Exception:
            if not same_dispatch:
                await _close([u for n, u in upstreams.items() if gateway.upstreams.get(n) is not u])
            raise
        return upstreams, dispatcher, pipeline

    async def _replace_fleet(self, config: Config, dispatcher: Any) -> None:
        from crossroads.dispatch.fleet import Fleet

        gateway = self.gateway
        if gateway.fleet is not None:
            await gateway.fleet.aclose()
        gateway.fleet = Fleet.start_for(config, dispatcher, gateway.limits.state)
        if gateway.metrics is not None:
            gateway.metrics.dispatcher = dispatcher

    async def _retire(self, engine: Engine, upstreams: list[Upstream]) -> None:
        """Once ``engine`` serves nothing: close its selectors and the clients the new
        config does not use,
        and, in a process that froze its start-up objects out of the cyclic GC
        (``freeze_gc``), collect the old engine's cycles and freeze what lives again (else
        every reload would keep its predecessor's pipeline for good)."""
        while engine.in_flight > 0:
            await asyncio.sleep(RETIRE_POLL_S)
        try:
            await engine.pipeline.aclose()  # online learners send what they hold
        except Exception:
            log.exception("closing the old config's selectors failed")
        del engine
        self._unused = [u for u in self._unused if u not in upstreams]
        await _close(upstreams)
        if self.gateway.freeze_gc:
            import gc

            started = time.perf_counter()
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            log.info(
                "reload: collected the old config in %.1f ms",
                1000 * (time.perf_counter() - started),
            )

    async def aclose(self) -> None:
        """Stop listening for SIGHUP; close the replaced clients still open (shutdown)."""
        if self._signalled:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._signalled = False
        for task in list(self._retiring):
            task.cancel()
        unused, self._unused = self._unused, []
        await _close(unused)


async def _close(upstreams: list[Upstream]) -> None:
    for upstream in upstreams:
        try:
            await upstream.aclose()
        except Exception:  # closing must not stop the others from closing
            log.exception("closing upstream %s failed", upstream.name)
