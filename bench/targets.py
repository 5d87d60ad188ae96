"""The servers a benchmark compares: crossroads (``crossroads serve``) and the LiteLLM proxy.

LiteLLM is installed by :func:`ensure_litellm` into its own virtualenv,
``bench/.venv-litellm`` (gitignored), so it never touches crossroads' environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.procs import ROOT, Service, free_port, pinned

CONFIGS = ROOT / "bench" / "configs"
LITELLM_VENV = ROOT / "bench" / ".venv-litellm"


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
    }
    base = f"http://127.0.0.1:{port}"
    return Service(f"crossroads-{name}", cmd, base + "/v1", base + "/health", env=env)


def ensure_litellm(quiet: bool = True) -> Path:
    """The ``litellm`` executable of ``bench/.venv-litellm``, installing it on first use."""
    exe = LITELLM_VENV / "bin" / "litellm"
    if exe.exists():
        return exe
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run(
        [shutil.which(python) or sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True
    )
    pip = [
        str(LITELLM_VENV / "bin" / "pip"),
        "install",
        *(["-q"] if quiet else []),
        "litellm[proxy]",
    ]
    subprocess.run(pip, check=True)
    return exe


def litellm_version() -> str:
    """The installed LiteLLM version, or ``"?"``."""
    python = LITELLM_VENV / "bin" / "python"
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "?"


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
