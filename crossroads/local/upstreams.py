"""Bring a config's ``kind: local`` upstreams to life: start their servers, fill in URLs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crossroads.local.pool import LocalModelPool


def local_upstreams(config: Any) -> list[Any]:
    """The config's ``kind: local`` upstreams, in order."""
    return [u for u in config.upstreams if u.kind == "local"]


async def start_local_upstreams(
    config: Any, *, data_dir: Path | None = None, startup_timeout: float = 120.0
) -> tuple[Any, LocalModelPool | None]:
    """Start one server per local model the config uses; return the config with each local
    upstream's ``base_url`` set to its server, and the pool to stop at shutdown.

    Upstreams naming the same model share its server. With no local upstream, returns the
    config unchanged and no pool. Raises :class:`LocalModelError` (after stopping whatever
    started) if a model cannot run.
    """
    wanted = local_upstreams(config)
    if not wanted:
        return config, None
    names = list(dict.fromkeys(u.model for u in wanted))
    pool = LocalModelPool(
        names,
        data_dir=data_dir,
        n_ctx=max(u.n_ctx for u in wanted),
        n_threads=max(u.n_threads for u in wanted),
        startup_timeout=startup_timeout,
    )
    urls = await pool.start()
    upstreams = [
        u.model_copy(update={"base_url": urls[u.model]}) if u.kind == "local" else u
        for u in config.upstreams
    ]
    return config.model_copy(update={"upstreams": upstreams}), pool
