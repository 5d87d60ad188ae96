"""Routers: estimators that predict each model's quality on a prompt, and selection over them.

>>> from crossroads.routers import make, Outcomes  # doctest: +SKIP
>>> router = make("knn").fit(train_embeddings, Outcomes(models, quality, cost))  # doctest: +SKIP
>>> router.select(test_embeddings, lam=0.5)  # doctest: +SKIP
"""

from crossroads.routers.artifact import load, load_artifact, save
from crossroads.routers.base import Outcomes, Router
from crossroads.routers.objectives import lambda_grid, select
from crossroads.routers.registry import available, make, router_class

__all__ = [
    "Outcomes",
    "Router",
    "available",
    "lambda_grid",
    "load",
    "load_artifact",
    "make",
    "router_class",
    "save",
    "select",
]
