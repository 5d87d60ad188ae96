"""Small trained heads over the prompt embedding, stored as ``.npz`` (no pickle).

A :class:`Head` is a stack of dense layers (ReLU between them) ending in a softmax over
``labels`` (``output="softmax"``) or one sigmoid score (``output="sigmoid"``). Training
(:mod:`crossroads.signals.training`) writes them; learned signals load them at ``prepare``.
The built-in heads live in ``crossroads/signals/heads/<name>.npz``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from crossroads.exceptions import ConfigError

if TYPE_CHECKING:
    import numpy as np

HEAD_FORMAT = 1
ENCODER = "all-MiniLM-L6-v2"


@dataclass
class Head:
    """Dense layers ``weights[i]`` (in × out) and ``biases[i]``; ReLU between layers."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    labels: list[str]
    output: Literal["softmax", "sigmoid"] = "softmax"
    meta: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # extra data (ood references)

    @property
    def dimension(self) -> int:
        """The embedding width the head reads."""
        return int(self.weights[0].shape[0])

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """``(n, len(labels))`` probabilities (softmax), or ``(n,)`` scores (sigmoid)."""
        import numpy as np

        x = vectors
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = x @ w + b
            if i < len(self.weights) - 1:
                x = np.maximum(x, 0.0)
        if self.output == "sigmoid":
            return np.asarray(1.0 / (1.0 + np.exp(-x[:, 0])))
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return np.asarray(e / e.sum(axis=1, keepdims=True))

    def save(self, path: str | Path) -> Path:
        """Write the head as one ``.npz`` file; returns its path."""
        import numpy as np

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {f"w{i}": w for i, w in enumerate(self.weights)}
        arrays.update({f"b{i}": b for i, b in enumerate(self.biases)})
        arrays.update({f"x_{k}": v for k, v in self.arrays.items()})
        header = {
            "format": HEAD_FORMAT,
            "labels": self.labels,
            "output": self.output,
            "layers": len(self.weights),
            "meta": self.meta,
        }
        arrays["header"] = np.array(json.dumps(header))
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)
        return path


def load_head(path: str | Path) -> Head:
    """The head stored at ``path``; a clear error when it is missing or not a head."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            [("signals", f"no trained head at {path}: train one with 'crossroads signals train'")]
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            layers = int(header["layers"])
            weights = [data[f"w{i}"].astype(np.float32) for i in range(layers)]
            biases = [data[f"b{i}"].astype(np.float32) for i in range(layers)]
            extra = {k[2:]: data[k] for k in data.files if k.startswith("x_")}
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError([("signals", f"{path} is not a crossroads signal head: {exc}")]) from exc
    if header.get("format") != HEAD_FORMAT:
        raise ConfigError(
            [("signals", f"{path} has head format {header.get('format')}; expected {HEAD_FORMAT}")]
        )
    return Head(weights, biases, list(header["labels"]), header["output"], header["meta"], extra)


def builtin_head_path(name: str) -> Path:
    """Where the head shipped with crossroads as ``name`` lives."""
    return Path(str(resources.files("crossroads.signals").joinpath("heads", f"{name}.npz")))


def resolve_head(name: str, model: str | None) -> Head:
    """The head a signal config names: its ``model`` path, else the built-in ``name``."""
    return load_head(Path(model).expanduser() if model else builtin_head_path(name))
