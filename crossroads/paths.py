"""Where crossroads keeps its state: traces, exported models, embedding caches, model files."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The per-user data directory: ``$CROSSROADS_DATA_DIR`` or ``~/.local/share/crossroads``."""
    override = os.environ.get("CROSSROADS_DATA_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "crossroads"
