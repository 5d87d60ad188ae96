"""Where local models keep their files under the per-user data dir.

The data dir itself is :func:`crossroads.store.base.data_dir` (``CROSSROADS_DATA_DIR``
overrides it); models go to ``models/``, server logs to ``logs/``.
"""

from __future__ import annotations

from pathlib import Path

from crossroads.paths import data_dir

__all__ = ["data_dir", "logs_dir", "models_dir"]


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
