"""Where crossroads keeps per-user state: assembled model files, server logs, traces.

``CROSSROADS_DATA_DIR`` overrides the location; otherwise ``$XDG_DATA_HOME/crossroads``,
falling back to ``~/.local/share/crossroads``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """The per-user data directory (not created).

    >>> data_dir({"CROSSROADS_DATA_DIR": "/tmp/xr"})
    PosixPath('/tmp/xr')
    """
    if env is None:
        env = os.environ
    override = env.get("CROSSROADS_DATA_DIR")
    if override:
        return Path(override).expanduser()
    xdg = env.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "crossroads"


def models_dir(base: Path | None = None) -> Path:
    """Directory for model files crossroads assembles or exports (created on demand)."""
    path = (base or data_dir()) / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def logs_dir(base: Path | None = None) -> Path:
    """Directory for the logs of managed subprocesses (created on demand)."""
    path = (base or data_dir()) / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path
