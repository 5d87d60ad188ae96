"""Learned routers by name, in the one registry (:data:`crossroads.registry.ROUTERS`, entry-point
group ``crossroads.routers``, value ``module:Class``): built-ins and plugins alike.
"""

from __future__ import annotations

from typing import Any

from crossroads.exceptions import ModelNotFoundError
from crossroads.registry import ROUTERS

for _name, _spec in {
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
}.items():
    ROUTERS.register_lazy(_name, _spec)


def available() -> list[str]:
    """Every registered router name (built-ins and entry points)."""
    return ROUTERS.names()


def router_class(name: str) -> type[Any]:
    """The router class registered as ``name``."""
    try:
        return ROUTERS.get(name)
    except KeyError:
        raise ModelNotFoundError(
            f"unknown router {name!r}; registered routers are: {', '.join(available())}"
        ) from None


def make(name: str, **params: Any) -> Any:
    """A new, unfitted router registered as ``name`` with ``params``."""
    return router_class(name)(**params)
