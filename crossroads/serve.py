"""Run the gateway under uvicorn (uvloop + httptools), one or several worker processes."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crossroads.config import Config
from crossroads.exceptions import CrossroadsError


def server_options(cfg: Config, host: str | None, port: int | None) -> dict[str, Any]:
    """uvicorn settings for the gateway: the fast event loop and parser, no access log."""
    import importlib.util

    return {
        "host": host or cfg.server.host,
        "port": cfg.server.port if port is None else port,
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "http": _protocol(cfg.server.http),
        "server_header": False,
        "lifespan": "on",
        "access_log": False,
        "proxy_headers": False,  # no X-Forwarded-* rewriting on the hot path
        "log_level": os.environ.get("CROSSROADS_LOG_LEVEL", "warning"),
        "timeout_keep_alive": cfg.server.idle_timeout_s,
        "timeout_graceful_shutdown": cfg.server.shutdown_timeout_s,
        "backlog": 4096,
    }


def _protocol(choice: str) -> Any:
    import importlib.util

    if importlib.util.find_spec("httptools") is None:
        return "h11"
    if choice == "crossroads":
        from crossroads.gateway.protocol import GatewayProtocol

        return GatewayProtocol
    return "httptools"


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def banner(cfg: Config, host: str, port: int, workers: int) -> str:
    """What ``serve`` prints at start-up: where, which models, which policy."""
    url = f"http://{host}:{port}/v1"
    lines = [f"crossroads serving on {url} ({workers} worker{'s' if workers > 1 else ''})"]
    if not cfg.server.api_keys and not _is_loopback(host):
        lines.append(
            f"  WARNING: listening on {host} with no server.api_keys: anyone who can reach this "
            "address can spend your upstream keys. Add api_keys or bind to 127.0.0.1."
        )
    for m in cfg.models:
        price = f"${m.price.input:g}/${m.price.output:g} per Mtok"
        via = ", ".join(d.upstream for d in m.deployments)
        lines.append(f"  model {m.name:<24} via {via:<16} {price}")
    for e in cfg.entrypoints:
        names = e.decisions or [d.name for d in cfg.decisions]
        default = (e.default or cfg.default_decision).models
        lines.append(
            f"  route {e.name!r}: decisions {', '.join(names) or '(none)'}; default {default}"
        )
        chosen = sorted((d for d in cfg.decisions if d.name in names), key=lambda d: -d.priority)
        for d in chosen:
            lines.append(
                f"    if {_rule_text(d.when)} → {', '.join(d.models)} "
                f"({d.name}, {d.selection.method})"
            )
        fallback = e.default or cfg.default_decision
        lines.append(f"    else → {', '.join(fallback.models)} ({fallback.name})")
    entry = cfg.entrypoints[0].name if cfg.entrypoints else cfg.models[0].name
    lines += [
        "try:",
        f"  curl {url}/chat/completions -H 'content-type: application/json' \\",
        f'    -d \'{{"model": "{entry}", "messages": [{{"role": "user", "content": "Hello"}}]}}\'',
        f"  python -c \"import openai; c = openai.OpenAI(base_url='{url}', api_key='-'); "
        f"print(c.chat.completions.create(model='{entry}', messages=[{{'role': 'user', "
        "'content': 'Hello'}]).choices[0].message.content)\"",
    ]
    return "\n".join(lines)


def _rule_text(rule: Any) -> str:
    """A rule in one line: ``any(metadata:completions_api, regex:continuation)``."""
    if isinstance(rule, str):
        return rule
    for op in ("all", "any"):
        children = getattr(rule, op, None)
        if isinstance(children, list):
            return f"{op}({', '.join(_rule_text(r) for r in children)})"
    return f"not({_rule_text(rule.not_)})"


def run(
    cfg: Config,
    *,
    config_path: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
) -> None:
    """Serve until interrupted; local models (``kind: local`` upstreams) start first and
    stop with the gateway."""
    n = workers or cfg.server.workers
    cfg, pool = _start_local_models(cfg, n)
    try:
        _run(cfg, config_path=config_path, host=host, port=port, workers=n, pool=pool)
    finally:
        if pool is not None:
            import asyncio

            asyncio.run(pool.stop())


def _start_local_models(cfg: Config, workers: int) -> tuple[Config, Any]:
    from crossroads.local.upstreams import local_upstreams, start_local_upstreams

    wanted = local_upstreams(cfg)
    if not wanted:
        return cfg, None
    if workers > 1:
        raise CrossroadsError(
            "--workers > 1 cannot share local models (kind: local upstreams): serve them with "
            "one worker, or run llama.cpp servers yourself and point kind: openai upstreams at them"
        )
    import asyncio

    names = ", ".join(dict.fromkeys(u.model for u in wanted))
    print(f"starting local models: {names} ...", flush=True)
    cfg, pool = asyncio.run(start_local_upstreams(cfg))
    if pool is not None:
        pool.supervise()  # restart a model server that dies; requests fall back meanwhile
    return cfg, pool


def pool_lines(pool: Any) -> list[str]:
    """One line per running local model server: model, process, URL, log."""
    return [
        f"  local {name:<24} llama.cpp pid {server.pid} at {server.base_url} (log: {server.log_path})"
        for name, server in pool.servers.items()
    ]


@contextlib.contextmanager
def _metrics_dir(cfg: Config) -> Iterator[None]:
    """Where the workers of one ``serve`` publish their metrics to each other
    (``$CROSSROADS_METRICS_DIR``): a fresh directory, removed at exit; or the one the
    environment names, emptied of an earlier run's snapshots."""
    from crossroads.observe.workers import DIR_ENV, clear

    if not cfg.metrics.enabled:
        yield
        return
    given = os.environ.get(DIR_ENV)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        clear(Path(given))
        yield
        return
    with tempfile.TemporaryDirectory(prefix="crossroads-metrics-") as path:
        os.environ[DIR_ENV] = path
        try:
            yield
        finally:
            del os.environ[DIR_ENV]


def _run(
    cfg: Config,
    *,
    config_path: Path | None,
    host: str | None,
    port: int | None,
    workers: int,
    pool: Any,
) -> None:
    import uvicorn

    from crossroads.gateway import create_app

    options = server_options(cfg, host, port)
    n = workers
    if n > 1:
        if config_path is None:
            raise CrossroadsError("--workers > 1 needs a config file (-c): workers load it by path")
        os.environ["CROSSROADS_CONFIG"] = str(Path(config_path).resolve())
        print(banner(cfg, options["host"], options["port"], n), flush=True)
        with _metrics_dir(cfg):
            uvicorn.run("crossroads.gateway.app:app_from_env", factory=True, workers=n, **options)
        return
    app = create_app(cfg, freeze_gc=True, config_path=config_path)
    server = uvicorn.Server(uvicorn.Config(app, **options))
    text = banner(cfg, options["host"], options["port"], 1)
    if pool is not None:
        text = text.replace("\ntry:", "\n" + "\n".join(pool_lines(pool)) + "\ntry:", 1)
    print(text, flush=True)
    server.run()
    if not server.started:
        raise CrossroadsError(
            f"the gateway could not start on {options['host']}:{options['port']} (port in use?)"
        )
