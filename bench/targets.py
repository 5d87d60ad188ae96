"""The servers a benchmark compares: crossroads (``crossroads serve``), the LiteLLM proxy and
TensorZero's gateway.

LiteLLM and TensorZero are installed from PyPI, each into its own virtualenv
(``bench/.venv-litellm``, ``bench/.venv-tensorzero``, gitignored) on first use, so they never
touch crossroads' environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.procs import OUT, ROOT, AnnouncedService, Service, free_port, pinned

CONFIGS = ROOT / "bench" / "configs"
LITELLM_VENV = ROOT / "bench" / ".venv-litellm"
TENSORZERO_VENV = ROOT / "bench" / ".venv-tensorzero"
# TensorZero's OpenAI-compatible API names a configured model this way.
TENSORZERO_MODEL = "tensorzero::model_name::{}"


def crossroads_service(config: str, upstream: str, cpus: str | None, workers: int = 1) -> Service:
    """``crossroads serve -c bench/configs/<config>.yaml`` on a free port. ``<config>+uvicorn``
    serves the same config with uvicorn's HTTP protocol in place of crossroads' own."""
    port = free_port()
    name = config
    config, _, http = config.partition("+")
    exe = shutil.which("crossroads", path=str(Path(sys.executable).parent)) or "crossroads"
    cmd = pinned(
        [
            exe,
            "serve",
            "-c",
            str(CONFIGS / f"{config}.yaml"),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cpus,
    )
    traces = os.environ.get("CROSSROADS_BENCH_TRACES", "sqlite:///bench/out/bench-traces.db")
    env = {
        "FAKE_UPSTREAM_BASE": upstream,
        "CROSSROADS_BENCH_TRACES": traces,
        "CROSSROADS_BENCH_HTTP": http or "crossroads",
        "CROSSROADS_BENCH_KEY": "bench",  # the load generator's key (crossroads-limits)
    }
    base = f"http://127.0.0.1:{port}"
    return Service(f"crossroads-{name}", cmd, base + "/v1", base + "/health", env=env)


def ensure_venv(venv: Path, requirement: str, quiet: bool = True) -> Path:
    """The python of ``venv``, creating it and ``pip install``-ing ``requirement`` on first use."""
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists():
        return python
    base = f"python{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([shutil.which(base) or sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", *(["-q"] if quiet else []), requirement]
    subprocess.run(pip, check=True)
    marker.write_text(requirement + "\n")
    return python


def ensure_litellm(quiet: bool = True) -> Path:
    """The ``litellm`` executable of ``bench/.venv-litellm``, installing it on first use."""
    exe = LITELLM_VENV / "bin" / "litellm"
    if not exe.exists():
        ensure_venv(LITELLM_VENV, "litellm[proxy]", quiet)
    return exe


def venv_version(venv: Path, package: str) -> str:
    """The version of ``package`` installed in ``venv``, or ``"?"``."""
    if not (venv / "bin" / "python").exists():
        return "?"
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "?"


def litellm_version() -> str:
    """The LiteLLM version of ``bench/.venv-litellm``, installing it on first use."""
    ensure_litellm()
    return venv_version(LITELLM_VENV, "litellm")


def litellm_service(upstream: str, cpus: str | None, key: str, workers: int = 1) -> Service:
    """The LiteLLM proxy with ``bench/configs/litellm.yaml``, telemetry off, on a free port.

    LiteLLM refuses to start without a master key: ``key`` is a throw-away one per run.
    """
    exe = ensure_litellm()
    port = free_port()
    cmd = pinned(
        [
            str(exe),
            "--config",
            str(CONFIGS / "litellm.yaml"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            str(workers),
            "--telemetry",
            "False",
        ],
        cpus,
    )
    env = {
        "FAKE_UPSTREAM_BASE": upstream,
        "LITELLM_TELEMETRY": "False",
        "LITELLM_MASTER_KEY": key,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price list at start
        "LITELLM_LOG": "ERROR",
        "NO_DOCKER": "1",
        "PATH": f"{LITELLM_VENV / 'bin'}:{os.environ.get('PATH', '')}",
    }
    base = f"http://127.0.0.1:{port}"
    return Service("litellm", cmd, base + "/v1", base + "/health/liveliness", env=env)


def tensorzero_service(upstream: str, cpus: str | None) -> Service:
    """TensorZero's gateway (``bench/tensorzero_gateway.py`` in ``bench/.venv-tensorzero``):
    one model per fake-upstream model, observability off, on a port it picks itself.

    It has no worker processes: its Rust runtime runs on the cores in ``cpus``.
    """
    python = ensure_venv(TENSORZERO_VENV, "tensorzero")
    OUT.mkdir(parents=True, exist_ok=True)
    cmd = pinned(
        [
            str(python),
            str(ROOT / "bench" / "tensorzero_gateway.py"),
            "--upstream",
            upstream,
            "--models",
            "fake-small,fake-large",
            "--config",
            str(OUT / "tensorzero.toml"),
            "--ready-file",
            str(OUT / "tensorzero.url"),
        ],
        cpus,
    )
    env = {"RUST_LOG": "warn", "TENSORZERO_DISABLE_PSEUDONYMOUS_USAGE_ANALYTICS": "1"}
    return AnnouncedService("tensorzero", cmd, "", "", env=env, ready_file=OUT / "tensorzero.url")


def tensorzero_version() -> str:
    """The TensorZero version of ``bench/.venv-tensorzero``, installing it on first use."""
    ensure_venv(TENSORZERO_VENV, "tensorzero")
    return venv_version(TENSORZERO_VENV, "tensorzero")
