"""Serving a router artifact in the gateway: embed the prompt, predict, select.

>>> service = RouterService("artifacts/knn.joblib", model_map={"gpt-4-1106-preview": "gpt4"})
>>> service.load()  # doctest: +SKIP
>>> service.score(["What is 2+2?"], candidates=["gpt4", "mixtral"])[0].model  # doctest: +SKIP
'mixtral'

Thread-safety: ``load()`` is idempotent and locked; after it, ``score`` may run in several
threads at once (the router is only read; the embedder is thread-safe). ``score`` is blocking
CPU work (~3-5 ms per short prompt, mostly the embedding): call ``ascore`` from async code.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossroads.exceptions import ConfigError, NoCandidateError


@dataclass(slots=True)
class RouterDecision:
    """A router's verdict on one prompt, in gateway model names."""

    model: str  # the chosen candidate
    quality: dict[str, float]  # predicted quality per scored candidate
    cost: dict[str, float]  # predicted cost per scored candidate (artifact's cost unit)
    score: dict[str, float]  # the objective's value per candidate (higher is better)
    objective: dict[str, float] = field(default_factory=dict)
    unscored: list[str] = field(default_factory=list)  # candidates the artifact does not know


class RouterService:
    """A fitted router artifact behind a small API for the gateway's selection step.

    ``objective`` is ``{"lambda": float}`` (maximise quality - lambda*cost) or
    ``{"quality_target": float}`` (cheapest candidate predicted to reach it); by default the
    calibrated ``lambda`` stored in the artifact, else ``{"lambda": 0.0}`` (best quality).
    ``model_map`` maps artifact model keys to gateway model names (unmapped keys keep their
    name). The constructor stores parameters only; ``load()`` reads the artifact.
    """

    def __init__(
        self,
        artifact: str | Path,
        objective: dict[str, float] | None = None,
        model_map: dict[str, str] | None = None,
        embedder: Any = None,
    ) -> None:
        self.artifact = artifact
        self.objective = objective
        self.model_map = model_map
        self.embedder = embedder
        self._router: Any = None
        self._lock = threading.Lock()

    def load(self) -> RouterService:
        """Read the artifact, resolve the objective, load the embedder and warm it up."""
        if self._router is not None:
            return self
        with self._lock:
            if self._router is not None:
                return self
            from crossroads.routers.artifact import load_artifact

            payload = load_artifact(self.artifact)
            self.resolved_ = Path(self.artifact).resolve()  # through a promote symlink
            router = payload["router"]
            features = payload["meta"].get("features", "minilm-embedding")
            if router.uses_prompts and features not in {"minilm-embedding", "given"}:
                raise ConfigError(
                    [
                        (
                            "selection.router",
                            f"{self.artifact} was fitted on {features}, not on "
                            "prompt embeddings; the gateway can serve only prompt-embedding routers",
                        )
                    ]
                )
            self.calibration_: dict[str, Any] = payload.get("calibration", {})
            self.router_name_: str | None = payload.get("router_name")
            self.meta_: dict[str, Any] = dict(payload.get("meta") or {})
            self.objective_ = self._resolve_objective(self.calibration_)
            names = dict(self.model_map or {})
            unknown = set(names) - set(router.models_)
            if unknown:
                raise ConfigError(
                    [
                        (
                            "selection.model_map",
                            f"keys {sorted(unknown)} are not models of "
                            f"{self.artifact}; its models are {router.models_}",
                        )
                    ]
                )
            self.gateway_names_ = [names.get(m, m) for m in router.models_]
            self._index = {name: i for i, name in enumerate(self.gateway_names_)}
            if router.uses_prompts:
                embedder = self.embedder or getattr(router, "embedder", None)
                if embedder is None:
                    from crossroads.embeddings import Embedder

                    # Read prompts as the features were read at fit time; artifacts from
                    # before windows existed were fitted on the head of each prompt.
                    embedder = Embedder(window=self.meta_.get("window", "head"))
                # Shares the process's one loaded model with the signals (load_model).
                self.embedder_ = embedder.load()
                self.embedder_.encode(["warm up"])
            else:
                self.embedder_ = None
            self.reads_request_vector_ = _reads_request_vector(self.embedder_)
            self._router = router
        return self

    @property
    def models(self) -> list[str]:
        """Gateway names of the models the artifact can score."""
        self.load()
        return list(self.gateway_names_)

    def _resolve_objective(self, calibration: dict[str, Any]) -> dict[str, float]:
        objective = self.objective
        if objective is None:
            lam = calibration.get("lambda")
            return {"lambda": float(lam)} if lam is not None else {"lambda": 0.0}
        if len(objective) != 1 or next(iter(objective)) not in {"lambda", "quality_target"}:
            raise ConfigError(
                [
                    (
                        "selection.objective",
                        f"expected {{lambda: float}} or {{quality_target: "
                        f"float}}, got {objective!r}",
                    )
                ]
            )
        return {k: float(v) for k, v in objective.items()}

    def score(
        self, texts: list[str], candidates: list[str], costs: dict[str, float] | None = None
    ) -> list[RouterDecision]:
        """Predict quality and cost of each candidate per text and choose one per text.

        ``costs`` optionally overrides the artifact's expected cost per candidate (same unit
        as the data it was calibrated on, or lambda loses its meaning).
        """
        return self.decide(self.features(texts), candidates, costs)

    def features(self, texts: list[str]) -> Any:
        """What the router reads of ``texts``: their embeddings, or the texts themselves
        for a router that ignores prompts."""
        self.load()
        return self.embedder_.encode(texts) if self.embedder_ is not None else texts

    def decide(
        self, features: Any, candidates: list[str], costs: dict[str, float] | None = None
    ) -> list[RouterDecision]:
        """:meth:`score` of prompts already turned into :meth:`features`."""
        import numpy as np

        from crossroads.routers.objectives import select

        self.load()
        allowed = [self._index[c] for c in candidates if c in self._index]
        unscored = [c for c in candidates if c not in self._index]
        if not allowed:
            raise NoCandidateError(
                f"none of the candidates {candidates} is known to router {self.artifact}; "
                f"it scores {self.gateway_names_} (map names with model_map)"
            )
        router = self._router
        quality = router.predict(features)
        cost = router.predict_cost(features)
        if costs:
            for name, value in costs.items():
                if name in self._index:
                    cost[:, self._index[name]] = value
        lam = self.objective_.get("lambda")
        tau = self.objective_.get("quality_target")
        chosen = select(quality, cost, lam=lam, quality_target=tau, candidates=allowed)
        if lam is not None:
            value = quality - cost * (lam if np.isfinite(lam) else 1e12)
        else:
            value = quality
        decisions = []
        for row in range(len(quality)):
            decisions.append(
                RouterDecision(
                    model=self.gateway_names_[chosen[row]],
                    quality={self.gateway_names_[i]: float(quality[row, i]) for i in allowed},
                    cost={self.gateway_names_[i]: float(cost[row, i]) for i in allowed},
                    score={self.gateway_names_[i]: float(value[row, i]) for i in allowed},
                    objective=dict(self.objective_),
                    unscored=unscored,
                )
            )
        return decisions

    async def ascore(
        self, texts: list[str], candidates: list[str], costs: dict[str, float] | None = None
    ) -> list[RouterDecision]:
        """``score`` in a worker thread, for the gateway's event loop."""
        return await asyncio.to_thread(self.score, texts, candidates, costs)


class RouterSelector:
    """The gateway's ``selection: {method: router, ...}`` over a :class:`RouterService`.

    Duck-types ``crossroads.selection.Selector`` (``method``, ``is_async``, ``select``,
    ``aselect``); register it with ``SELECTORS.register("router")(RouterSelector)``. ``config``
    needs ``router`` (artifact path) and may have ``objective`` and ``model_map``. Scores the
    request's last user message (or all its text), sets each candidate's ``score`` to the
    objective value, and returns the chosen candidate; candidates the artifact does not know
    keep ``score = None`` and are never chosen while a known one is eligible.
    """

    method = "router"
    is_async = True

    def __init__(self, config: Any) -> None:
        self.config = config
        self.service = RouterService(
            config.router,
            objective=getattr(config, "objective", None),
            model_map=getattr(config, "model_map", None),
        )

    def _pick(self, candidates: list[Any], decision: RouterDecision) -> Any:
        for c in candidates:
            c.score = decision.score.get(c.model)
        return next(c for c in candidates if c.model == decision.model)

    def select(self, request: Any, candidates: list[Any]) -> Any:
        """Blocking selection (embeds the prompt in the calling thread)."""
        text = request.prompt
        (decision,) = self.service.score([text], [c.model for c in candidates])
        return self._pick(candidates, decision)

    async def aselect(self, request: Any, candidates: list[Any]) -> Any:
        """Selection off the event loop. A router fitted on the default embedding reads the
        request's vector (a signal's, or one micro-batched encode it leaves for the others);
        any other embeds the prompt in a worker thread."""
        text = request.prompt
        names = [c.model for c in candidates]
        service = self.service.load()
        if service.reads_request_vector_:
            from crossroads.embeddings.shared import request_vector

            if request.vector is None:
                request.vector = await request_vector(text)
            features = request.vector[None, :]
            (decision,) = await asyncio.to_thread(service.decide, features, names)
        else:
            (decision,) = await service.ascore([text], names)
        return self._pick(candidates, decision)


def _reads_request_vector(embedder: Any) -> bool:
    """Whether ``embedder`` reads prompts as the shared request vector does (the default
    MiniLM model and window), so the vector a signal computed can be scored as it is."""
    from crossroads.embeddings import Embedder

    if type(embedder) is not Embedder:
        return False
    default = Embedder()
    return (embedder.resolved_model_dir, embedder.window_tag) == (
        default.resolved_model_dir,
        default.window_tag,
    )
