"""Selection methods: pick one model among a decision's eligible candidates."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from crossroads.registry import SELECTORS
from crossroads.types import Candidate, RoutingRequest, ShadowChoice

if TYPE_CHECKING:
    from crossroads.config import Config

__all__ = ["SELECTORS", "Selector", "build_selector"]


class Selector:
    """Chooses among eligible candidates (never empty). ``config`` is the decision's
    ``selection`` entry. Learned selectors set ``is_async`` and override :meth:`aselect`.

    The route records the chance the chosen candidate had (``Route.propensity``): a
    selector that draws sets ``propensity`` on the candidates it chose among; one that
    leaves it unset is taken at its word, ``deterministic`` (1.0) or not (unknown).
    ``shadows``: the selector also scores a shadow router, taken by :meth:`take_shadow`
    right after the choice."""

    method: ClassVar[str] = ""
    is_async: ClassVar[bool] = False
    deterministic: ClassVar[bool] = True
    shadows: bool = False

    def __init__(self, config: Any) -> None:
        self.config = config

    def bind(self, decision: str, models: Sequence[str], config: Config | None) -> None:
        """Called once before :meth:`prepare` with the decision's name, its candidate models
        and the whole config (online selectors find their state backend and model profiles)."""

    def prepare(self) -> None:
        """Load what selection needs (artifacts, models); called once before serving."""

    async def aclose(self) -> None:
        """Release what :meth:`prepare` opened (called at shutdown)."""

    def select(self, request: RoutingRequest, candidates: list[Candidate]) -> Candidate:
        """The chosen candidate."""
        raise NotImplementedError

    async def aselect(self, request: RoutingRequest, candidates: list[Candidate]) -> Candidate:
        """Asynchronous selection (default: :meth:`select`)."""
        return self.select(request, candidates)

    def take_shadow(self, request: RoutingRequest) -> ShadowChoice | None:
        """The shadow router's would-be choice for ``request``, once (see ``shadows``)."""
        return None


@SELECTORS.register("first")
@SELECTORS.register("static")
class FirstSelector(Selector):
    """The first eligible candidate in the decision's order."""

    method = "first"

    def select(self, request: RoutingRequest, candidates: list[Candidate]) -> Candidate:
        return candidates[0]


@SELECTORS.register("weighted")
class WeightedSelector(Selector):
    """A random eligible candidate with probability proportional to its weight."""

    method = "weighted"
    deterministic = False

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._random = random.Random(config.seed)

    def select(self, request: RoutingRequest, candidates: list[Candidate]) -> Candidate:
        weights = [self.config.weights.get(c.model, 1.0) for c in candidates]
        if sum(weights) <= 0:
            candidates[0].propensity = 1.0  # no weight anywhere: the first, every time
            return candidates[0]
        total = sum(weights)
        for c, w in zip(candidates, weights, strict=True):
            c.score = w
            c.propensity = w / total
        return self._random.choices(candidates, weights=weights)[0]


@SELECTORS.register("cheapest")
class CheapestSelector(Selector):
    """The eligible candidate with the lowest estimated cost (ties: decision order)."""

    method = "cheapest"

    def select(self, request: RoutingRequest, candidates: list[Candidate]) -> Candidate:
        best = candidates[0]
        for c in candidates:  # min() with a key, without the lambda: the first cheapest
            c.score = -c.estimated_cost
            if c.estimated_cost < best.estimated_cost:
                best = c
        return best


@SELECTORS.register("router")
class LearnedSelector(Selector):
    """A fitted router artifact chooses (see :class:`crossroads.config.RouterSelection`).
    The prompt is embedded in a worker thread, so the event loop never waits on it."""

    method = "router"
    is_async = True

    def prepare(self) -> None:
        from crossroads.routers.serving import RouterSelector, RouterService

        self._router = RouterSelector(self.config)
        self._router.service.load()
        self._shadow: RouterService | None = None
        self._shadows: dict[int, ShadowChoice] = {}
        path = getattr(self.config, "shadow", None)
        if path is not None:
            self._shadow = RouterService(
                path,
                model_map=getattr(self.config, "model_map", None),
                embedder=self._router.service.embedder_,  # one model for both, loaded once
            ).load()
            self.shadows = True

    @property
    def service(self) -> Any:
        """The loaded :class:`~crossroads.routers.serving.RouterService` (after prepare)."""
        return self._router.service

    def select(self, request: RoutingRequest, candidates: list[Candidate]) -> Candidate:
        return self._router.select(request, candidates)  # type: ignore[no-any-return]

    async def aselect(self, request: RoutingRequest, candidates: list[Candidate]) -> Candidate:
        if self._shadow is None:
            return await self._router.aselect(request, candidates)  # type: ignore[no-any-return]
        chosen, shadow = await asyncio.to_thread(self._select_and_shadow, request, candidates)
        self._shadows[id(request)] = shadow
        return chosen

    def take_shadow(self, request: RoutingRequest) -> ShadowChoice | None:
        return self._shadows.pop(id(request), None)

    def _select_and_shadow(
        self, request: RoutingRequest, candidates: list[Candidate]
    ) -> tuple[Candidate, ShadowChoice]:
        """The served choice, then the shadow's on the same features (one embedding)."""
        service, shadow = self._router.service, self._shadow
        assert shadow is not None
        texts, names = [request.prompt], [c.model for c in candidates]
        if service.reads_request_vector_ and request.vector is not None:
            features = request.vector[None, :]  # a signal's: not embedded again
        else:
            features = service.features(texts)
        (decision,) = service.decide(features, names)
        chosen = self._router._pick(candidates, decision)
        start = time.perf_counter()
        record = ShadowChoice(str(shadow.resolved_), "")
        try:
            if shadow.embedder_ is not service.embedder_:
                features = shadow.features(texts)
            (would,) = shadow.decide(features, names)
            record.model = would.model
            record.estimated_cost = would.cost.get(would.model)
            record.quality = would.quality.get(would.model)
        except Exception as exc:  # the shadow must never fail the served request
            record.error = f"{type(exc).__name__}: {exc}"[:500]
        record.elapsed_ms = (time.perf_counter() - start) * 1000
        return chosen, record


# The online learners (numpy) import only when a decision names one.
SELECTORS.register_lazy("linucb", "crossroads.online.linucb:LinUCBSelector")
SELECTORS.register_lazy("thompson", "crossroads.online.thompson:ThompsonSelector")
SELECTORS.register_lazy("ema", "crossroads.online.ema:EMASelector")


def build_selector(config: Any) -> Selector:
    """The selector for one decision's ``selection`` config."""
    return SELECTORS.get(config.method)(config)
