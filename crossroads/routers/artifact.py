"""Router artifacts: a fitted router plus its calibration, saved with a version stamp.

An artifact is a joblib file holding ``{"format", "format_version", "crossroads_version",
"sklearn_version", "router_name", "router", "models", "calibration", "meta"}``. Artifacts
are pickles: load only artifacts you (or your CI) produced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crossroads.exceptions import CrossroadsError

FORMAT = "crossroads-router"
FORMAT_VERSION = 1


def save(
    router: Any,
    path: str | Path,
    *,
    name: str | None = None,
    calibration: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a fitted ``router`` (with optional calibration and metadata) to ``path``."""
    import joblib
    import sklearn

    import crossroads

    router._check_fitted()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "crossroads_version": crossroads.__version__,
        "sklearn_version": sklearn.__version__,
        "router_name": name or type(router).__name__,
        "router": router,
        "models": list(router.models_),
        "calibration": dict(calibration or {}),
        "meta": dict(meta or {}),
    }
    tmp = path.with_name(path.name + ".tmp")
    joblib.dump(payload, tmp, compress=3)
    tmp.replace(path)
    return path


def load_artifact(path: str | Path) -> dict[str, Any]:
    """The whole artifact (router, calibration, metadata), checking its version stamp."""
    import joblib

    path = Path(path)
    if not path.is_file():
        raise CrossroadsError(
            f"no router artifact at {path}: create one with `crossroads fit --data ... --out {path}`"
        )
    try:
        payload = joblib.load(path)
    except Exception as exc:  # corrupt file, foreign pickle, missing class
        raise CrossroadsError(f"cannot read router artifact {path}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CrossroadsError(f"{path} is not a crossroads router artifact")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CrossroadsError(
            f"{path} has artifact format {version}; this crossroads reads format "
            f"{FORMAT_VERSION}. Refit it with `crossroads fit`."
        )
    return payload


def load(path: str | Path) -> Any:
    """The fitted router stored in the artifact at ``path``."""
    return load_artifact(path)["router"]
