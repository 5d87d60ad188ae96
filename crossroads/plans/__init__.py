"""Plans: how a routed request is served when it takes more than one call.

A decision's ``plan`` (see :mod:`crossroads.config.plans`) becomes one of these, built once
at start-up; :meth:`Engine.serve <crossroads.engine.Engine.serve>` hands a request whose
decision has one to ``plan.serve`` and makes one call otherwise (``SingleCall``), so a
decision without a plan costs nothing extra.

- :class:`~crossroads.plans.cascade.Cascade`: cheap stages first, escalate on rejection;
- :class:`~crossroads.plans.fanout.FanOut`: several models at once, then merge;
- :class:`~crossroads.plans.cache.SemanticCache`: a cached answer, else the inner plan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from crossroads.config import Config
    from crossroads.engine import Engine, EngineStream
    from crossroads.types import Request, Response, RoutingRequest, Trace


class Plan(Protocol):
    """What the engine runs for a decision with a plan."""

    kind: str

    def prepare(self) -> Any: ...

    async def serve(
        self, engine: Engine, request: Request, facts: RoutingRequest, trace: Trace, start: float
    ) -> Response | EngineStream: ...


def build_plan(config: Any) -> Plan:
    """The plan of one ``plan:`` config, prepared."""
    from crossroads.config.plans import CachePlan, CascadePlan

    if isinstance(config, CascadePlan):
        from crossroads.plans.cascade import Cascade

        return Cascade(config).prepare()
    if isinstance(config, CachePlan):
        from crossroads.plans.cache import SemanticCache

        inner = build_plan(config.then) if config.then is not None else None
        return SemanticCache(config, inner).prepare()
    from crossroads.plans.fanout import FanOut

    return FanOut(config).prepare()


def build_plans(config: Config) -> dict[str, Plan]:
    """Every decision's plan, by decision name (empty when no decision has one)."""
    from crossroads.config import Decision, DefaultDecision

    owners: list[Decision | DefaultDecision] = [*config.decisions, config.default_decision]
    owners += [e.default for e in config.entrypoints if e.default is not None]
    return {d.name: build_plan(d.plan) for d in owners if d.plan is not None}
