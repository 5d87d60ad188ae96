"""Plans: how a routed request is served when it takes more than one call.

A decision's ``plan`` (see :mod:`crossroads.config.plans`) becomes one of these, built once
at start-up; :meth:`Engine.serve <crossroads.engine.Engine.serve>` hands a request whose
decision has one to ``plan.serve`` and makes one call otherwise, so a
decision without a plan costs nothing extra.

- :class:`~crossroads.plans.cascade.Cascade`: cheap stages first, escalate on rejection;
- :class:`~crossroads.plans.fanout.FanOut`: several models at once, then merge;
- :class:`~crossroads.plans.cache.SemanticCache`: a cached answer, else the inner plan;
  its entries in this process, or in Redis when ``state.backend`` is Redis.
- :class:`~crossroads.plans.redact.Redaction`: personal data masked, then the inner plan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from crossroads.config import Config
    from crossroads.engine import Engine, EngineStream
    from crossroads.state import GuardedState, StateBackend
    from crossroads.types import Request, Response, RoutingRequest, Trace


class Plan(Protocol):
    """What the engine runs for a decision with a plan."""

    kind: str

    def prepare(self) -> Any: ...

    async def serve(
        self, engine: Engine, request: Request, facts: RoutingRequest, trace: Trace, start: float
    ) -> Response | EngineStream: ...


def build_plan(config: Any, shared: tuple[GuardedState, str] | None = None) -> Plan:
    """The plan of one ``plan:`` config, prepared. ``shared``: a guarded Redis state backend
    and a key prefix, for a cache to keep its entries in."""
    from crossroads.config.plans import CachePlan, CascadePlan, RedactPlan

    if isinstance(config, CascadePlan):
        from crossroads.plans.cascade import Cascade

        return Cascade(config).prepare()
    if isinstance(config, CachePlan):
        from crossroads.plans.cache import SemanticCache

        inner = build_plan(config.then) if config.then is not None else None
        store = None
        if shared is not None:
            from crossroads.plans.cache_redis import RedisCacheStore

            store = RedisCacheStore(
                *shared, config.ttl_s, config.max_entries, similarity_index=not config.exact_only
            )
        return SemanticCache(config, inner, store).prepare()
    if isinstance(config, RedactPlan):
        from crossroads.plans.redact import Redaction

        inner = build_plan(config.then, shared) if config.then is not None else None
        return Redaction(config, inner).prepare()
    from crossroads.plans.fanout import FanOut

    return FanOut(config).prepare()


def build_plans(config: Config, backend: StateBackend | None = None) -> dict[str, Plan]:
    """Every decision's plan, by decision name (empty when no decision has one). With a
    Redis state ``backend`` (the gateway's), caches keep their entries in it, under
    ``state.key_prefix`` + ``cache:<decision>:``, with their own timeout back-off."""
    from crossroads.config import Decision, DefaultDecision

    owners: list[Decision | DefaultDecision] = [*config.decisions, config.default_decision]
    owners += [e.default for e in config.entrypoints if e.default is not None]
    state = config.state
    if backend is None or backend.name != "redis" or state is None:
        return {d.name: build_plan(d.plan) for d in owners if d.plan is not None}
    from crossroads.state import GuardedState

    timeout = state.timeout_ms / 1000
    guarded = GuardedState(backend, timeout, state.retry_after_s)
    return {
        d.name: build_plan(d.plan, (guarded, f"{state.key_prefix}cache:{d.name}:"))
        for d in owners
        if d.plan is not None
    }
