"""Selection methods: pick one model among a decision's eligible candidates."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from crossroads.registry import SELECTORS
from crossroads.types import Candidate, RoutingRequest

if TYPE_CHECKING:
    from crossroads.config import Config

__all__ = ["SELECTORS", "Selector", "build_selector"]


class Selector:
    """Chooses among eligible candidates (never empty). ``config`` is the decision's
    ``selection`` entry. Learned selectors set ``is_async`` and override :meth:`aselect`."""

    method: ClassVar[str] = ""
    is_async: ClassVar[bool] = False

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

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._random = random.Random(config.seed)

    def select(self, request: RoutingRequest, candidates: list[Candidate]) -> Candidate:
        weights = [self.config.weights.get(c.model, 1.0) for c in candidates]
        if sum(weights) <= 0:
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
        for c in candidates:
            c.score = -c.estimated_cost
        return min(candidates, key=lambda c: c.estimated_cost)


@SELECTORS.register("router")
class LearnedSelector(Selector):
    """A fitted router artifact chooses (see :class:`crossroads.config.RouterSelection`).
    The prompt is embedded in a worker thread, so the event loop never waits on it."""

    method = "router"
    is_async = True

    def prepare(self) -> None:
        from crossroads.routers.serving import RouterSelector

        self._router = RouterSelector(self.config)
        self._router.service.load()

    @property
    def service(self) -> Any:
        """The loaded :class:`~crossroads.routers.serving.RouterService` (after prepare)."""
        return self._router.service

    def select(self, request: RoutingRequest, candidates: list[Candidate]) -> Candidate:
        return self._router.select(request, candidates)  # type: ignore[no-any-return]

    async def aselect(self, request: RoutingRequest, candidates: list[Candidate]) -> Candidate:
        return await self._router.aselect(request, candidates)  # type: ignore[no-any-return]


# The online learners (numpy) import only when a decision names one.
SELECTORS.register_lazy("linucb", "crossroads.online.linucb:LinUCBSelector")
SELECTORS.register_lazy("thompson", "crossroads.online.thompson:ThompsonSelector")
SELECTORS.register_lazy("ema", "crossroads.online.ema:EMASelector")


def build_selector(config: Any) -> Selector:
    """The selector for one decision's ``selection`` config."""
    return SELECTORS.get(config.method)(config)
