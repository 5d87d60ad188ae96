"""The latest evaluation report (``crossroads eval --out DIR``) under ``ui.eval_reports``.

A report is a directory holding ``index.html`` and one ``<dataset>.json`` (and
``<dataset>.png``) per dataset. The newest one is ``ui.eval_reports`` itself or one of its
subdirectories, by the time ``index.html`` was written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

MAX_REPORTS = 1000  # subdirectories looked at, at most
MAX_JSON_BYTES = 8 * 1024 * 1024  # a dataset's JSON larger than this is skipped
PLOT = re.compile(r"^[A-Za-z0-9_.-]+\.png$")


def latest_report(root: Path) -> Path | None:
    """The directory of the newest report under ``root`` (``root`` or a child), or None."""
    found: list[tuple[float, Path]] = []
    if (root / "index.html").is_file():
        found.append(((root / "index.html").stat().st_mtime, root))
    if root.is_dir():
        for i, child in enumerate(sorted(root.iterdir())):
            if i >= MAX_REPORTS:
                break
            page = child / "index.html"
            if page.is_file():
                found.append((page.stat().st_mtime, child))
    return max(found)[1] if found else None


def load_report(directory: Path, served: list[dict[str, Any]]) -> dict[str, Any]:
    """The report's datasets (their JSON, as ``crossroads eval`` wrote it, without the curve
    points) and which routers the gateway serves (``served``: decision, router, dataset)."""
    datasets = []
    for path in sorted(directory.glob("*.json")):
        if path.stat().st_size > MAX_JSON_BYTES:
            continue
        try:  # json, not orjson: the report writes NaN and Infinity (orjson sends them as null)
            data = json.loads(path.read_bytes())
        except ValueError:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("routers"), list):
            continue
        for router in data["routers"]:
            if isinstance(router, dict):
                router.pop("points", None)
        plot = f"{path.stem}.png"
        data["plot"] = plot if (directory / plot).is_file() else None
        datasets.append(data)
    return {
        "object": "crossroads.eval_report",
        "path": str(directory),
        "written_at": (directory / "index.html").stat().st_mtime,
        "datasets": datasets,
        "served": served,
    }


def plot_file(directory: Path, name: str) -> Path | None:
    """The PNG ``name`` of the report, or None (names only: no path leaves the directory)."""
    if not PLOT.match(name) or name.startswith("."):
        return None
    path = directory / name
    return path if path.is_file() else None
