"""The router registry: built-in routers register here, third-party ones via entry points
(group ``crossroads.routers``, value ``module:Class``), through the same code path.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from crossroads.exceptions import ModelNotFoundError

_BUILTIN: dict[str, str] = {
    "random": "crossroads.routers.baselines:RandomRouter",
    "mean": "crossroads.routers.baselines:MeanRouter",
    "knn": "crossroads.routers.knn:KNNRouter",
    "mlp": "crossroads.routers.mlp:MLPRouter",
    "linear": "crossroads.routers.linear:LinearRouter",
    "logistic": "crossroads.routers.linear:LogisticRouter",
    "mf": "crossroads.routers.mf:MatrixFactorizationRouter",
    "bt": "crossroads.routers.bt:BradleyTerryRouter",
    "cluster": "crossroads.routers.cluster:ClusterRouter",
    "ensemble": "crossroads.routers.ensemble:EnsembleRouter",
    "pairwise": "crossroads.routers.pairwise:PairwiseRouter",
}


def available() -> dict[str, str]:
    """Every registered router name -> ``module:Class`` (built-ins, then entry points)."""
    found = dict(_BUILTIN)
    for ep in entry_points(group="crossroads.routers"):
        found.setdefault(ep.name, ep.value)
    return found


def router_class(name: str) -> type[Any]:
    """The router class registered as ``name``."""
    spec = available().get(name)
    if spec is None:
        raise ModelNotFoundError(
            f"unknown router {name!r}; registered routers are: {', '.join(sorted(available()))}"
        )
    module, _, attr = spec.partition(":")
    return getattr(import_module(module), attr)  # type: ignore[no-any-return]


def make(name: str, **params: Any) -> Any:
    """A new, unfitted router registered as ``name`` with ``params``."""
    return router_class(name)(**params)
