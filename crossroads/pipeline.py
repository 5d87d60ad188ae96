"""The routing pipeline: signals → decisions → selection, producing a :class:`Route`.

One code path computes the decision and its trace; ``crossroads route`` and the gateway
both call :meth:`Pipeline.route`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from crossroads.config import Config, ModelConfig
from crossroads.cost import estimate_cost
from crossroads.decisions import (
    CompiledDecision,
    CompiledEntrypoint,
    compile_entrypoints,
    match,
    needs_more,
)
from crossroads.exceptions import ModelNotFoundError, NoCandidateError
from crossroads.redact import bounded, scrub
from crossroads.selection import Selector, build_selector
from crossroads.signals import Signal, build_signal
from crossroads.types import Candidate, Route, RoutingRequest, SignalResult


class Pipeline:
    """Routes requests under one config. Build with ``Pipeline(config).prepare()``."""

    def __init__(
        self, config: Config, availability: Callable[[str], str | None] | None = None
    ) -> None:
        self.config = config
        self.availability = availability

    def prepare(self) -> Pipeline:
        """Compile rules, build signals and selectors (once, before serving)."""
        cfg = self.config
        self.models_: dict[str, ModelConfig] = {m.name: m for m in cfg.models}
        self.entrypoints_: dict[str, CompiledEntrypoint] = compile_entrypoints(cfg)
        used = frozenset().union(*(e.signals for e in self.entrypoints_.values()))
        # Lazy: a declared signal that no rule reads is never built nor computed.
        self.signals_: dict[str, Signal] = {
            f"{s.kind}:{s.name}": build_signal(s)
            for s in cfg.signals
            if f"{s.kind}:{s.name}" in used
        }
        self._entry_signals = {
            name: (
                [self.signals_[n] for n in sorted(e.signals) if not self.signals_[n].is_async],
                [self.signals_[n] for n in sorted(e.signals) if self.signals_[n].is_async],
            )
            for name, e in self.entrypoints_.items()
        }
        self._selectors: dict[int, Selector] = {}
        for e in self.entrypoints_.values():
            for d in (*e.decisions, e.default):
                selector = build_selector(d.selection)
                selector.bind(d.name, d.models, cfg)
                selector.prepare()
                self._selectors[id(d)] = selector
        self._expected_output = cfg.server.expected_output_tokens
        # Anthropic has no legacy completions API: models only it serves cannot take them.
        kinds = {u.name: u.kind for u in cfg.upstreams}
        self._serves = {
            m.name: frozenset(m.serves)
            - (
                {"completions"}
                if all(kinds[d.upstream] == "anthropic" for d in m.deployments)
                else set()
            )
            for m in cfg.models
        }
        return self

    def selectors(self, decision: str) -> list[Selector]:
        """The selectors of the decisions named ``decision`` (one per entrypoint using it)."""
        return [
            self._selectors[id(d)]
            for e in self.entrypoints_.values()
            for d in (*e.decisions, e.default)
            if d.name == decision
        ]

    async def aclose(self) -> None:
        """Stop the selectors' background work (online learners flush their statistics)."""
        for selector in self._selectors.values():
            await selector.aclose()

    def uses_signal(self, kind: str) -> bool:
        """Whether some rule reads a signal of ``kind``."""
        return any(s.kind == kind for s in self.signals_.values())

    def knows(self, model: str) -> bool:
        """Whether ``model`` is a configured model or a routed entrypoint."""
        return model in self.models_ or model in self.entrypoints_

    def model_names(self) -> list[str]:
        """Entrypoints first, then configured models."""
        return [*self.entrypoints_, *self.models_]

    def served_routers(self) -> list[dict[str, str | None]]:
        """The learned routers the decisions serve (those loaded): per decision, the artifact,
        the router's name and the dataset it was fitted on."""
        served: dict[str, dict[str, str | None]] = {}
        for entry in self.entrypoints_.values():
            for decision in (*entry.decisions, entry.default):
                service = getattr(self._selectors[id(decision)], "service", None)
                meta = getattr(service, "meta_", None)
                if service is not None and meta is not None:
                    served[decision.name] = {
                        "decision": decision.name,
                        "artifact": str(service.artifact),
                        "router": service.router_name_,
                        "dataset": meta.get("dataset"),
                    }
        return list(served.values())

    async def route(self, request: RoutingRequest, model: str) -> Route:
        """Choose the model for ``request`` sent to ``model`` (an entrypoint or a model)."""
        started_at = time.time()
        start = time.perf_counter()
        if model in self.models_:
            route = self._explicit(request, model)
        elif model in self.entrypoints_:
            route = await self._routed(request, self.entrypoints_[model])
        else:
            raise ModelNotFoundError(
                f"The model {model!r} does not exist. Use one of: {', '.join(self.model_names())}",
                param="model",
            )
        route.routing_ms = (time.perf_counter() - start) * 1000
        route.started_at = started_at
        return route

    def _explicit(self, request: RoutingRequest, model: str) -> Route:
        candidate = self._candidate(request, self.models_[model])
        if request.operation not in self._serves[model]:
            raise NoCandidateError(
                f"The model {model!r} does not serve /{request.operation}: pick a model that "
                f"lists {request.operation!r} under 'serves'.",
                param="model",
            )
        return Route(
            model=model,
            decision="explicit",
            selection="explicit",
            candidates=[candidate],
            estimated_cost=candidate.estimated_cost,
            prompt_tokens_estimate=request.prompt_tokens,
            propensity=1.0,
        )

    async def _routed(self, request: RoutingRequest, entry: CompiledEntrypoint) -> Route:
        signals = await self.compute_signals(request, entry.name)
        decision, path = match(entry, signals)
        candidates: list[Candidate] = []
        eligible: list[Candidate] = []
        for m in decision.models:  # one loop, not two comprehensions (each a call of its own)
            candidate = self._candidate(request, self.models_[m])
            candidates.append(candidate)
            if candidate.eligible:
                eligible.append(candidate)
        if not eligible:
            # Only down, not unfit: keep the first; dispatch answers 503 with Retry-After.
            eligible = [c for c in candidates if (c.reason or "").startswith("unavailable")][:1]
        if not eligible:
            raise NoCandidateError(_no_candidate_message(decision, candidates), param="messages")
        selector = self._selectors[id(decision)]
        request.signals = signals
        if selector.is_async:
            chosen = await selector.aselect(request, eligible)
        else:
            chosen = selector.select(request, eligible)
        propensity = chosen.propensity
        if propensity is None and selector.deterministic:
            propensity = 1.0
        return Route(  # positional, in field order: keywords cost more
            chosen.model,
            decision.name,
            selector.method,
            path,  # rule_path
            signals,
            candidates,
            chosen.estimated_cost,
            request.prompt_tokens,  # prompt_tokens_estimate
            0.0,  # routing_ms, set by route()
            0.0,  # started_at, likewise
            propensity,
            selector.take_shadow(request) if selector.shadows else None,
        )

    async def compute_signals(
        self, request: RoutingRequest, entrypoint: str
    ) -> dict[str, SignalResult]:
        """The signals the entrypoint's rules read: cheap ones inline, then the others
        concurrently, each within its time budget (a late or failing signal is false),
        unless the cheap ones already settle which decision matches."""
        sync_signals, async_signals = self._entry_signals[entrypoint]
        results: dict[str, SignalResult] = {}
        for signal in sync_signals:
            t0 = time.perf_counter()
            try:
                result = signal.compute(request)
            except Exception as exc:  # a broken signal must not fail the request
                result = SignalResult(signal.name, False, error=_error_text(exc))
            result.elapsed_ms = (time.perf_counter() - t0) * 1000
            results[signal.name] = result
        if async_signals and needs_more(self.entrypoints_[entrypoint], results):
            outs = await asyncio.gather(*(_bounded(s, request) for s in async_signals))
            results.update((r.name, r) for r in outs)
        return results

    def _candidate(self, request: RoutingRequest, model: ModelConfig) -> Candidate:
        name = model.name  # once: a config model's attribute reads cost more than a plain one's
        out_tokens = request.max_output_tokens or self._expected_output
        cost = estimate_cost(model, request.prompt_tokens, out_tokens)
        reason = _ineligible(request, model, self._serves[name])
        if reason is None and self.availability is not None:
            reason = self.availability(name)
        return Candidate(name, cost, reason is None, reason)


def _ineligible(request: RoutingRequest, model: ModelConfig, serves: frozenset[str]) -> str | None:
    if request.needs:
        missing = request.needs.difference(model.capabilities)
        if missing:
            return f"lacks {', '.join(sorted(missing))}"
    if request.operation not in serves:
        return f"does not serve /{request.operation}"
    needed = request.prompt_tokens + (request.max_output_tokens or 0)
    if needed > model.context_window:
        return f"needs {needed} tokens, context window is {model.context_window}"
    return None


def _no_candidate_message(decision: CompiledDecision, candidates: list[Candidate]) -> str:
    why = "; ".join(f"{c.model}: {c.reason}" for c in candidates)
    return (
        f"No model of decision {decision.name!r} can serve this request ({why}). "
        "Shorten the prompt or max_tokens, drop the unsupported feature, or add a model "
        "that has it to the decision."
    )


def _error_text(exc: Exception) -> str:
    """A failed signal's error as traces record it: it may quote the prompt, so it is masked
    and bounded like matched text."""
    return bounded(scrub(f"{type(exc).__name__}: {exc}"))


async def _bounded(signal: Signal, request: RoutingRequest) -> SignalResult:
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(signal.timeout_ms / 1000):
            (result,) = await signal.evaluate([request])
    except TimeoutError:
        result = SignalResult(
            signal.name, False, error=f"timed out after {signal.timeout_ms:g} ms", timed_out=True
        )
    except Exception as exc:
        result = SignalResult(signal.name, False, error=_error_text(exc))
    result.elapsed_ms = (time.perf_counter() - t0) * 1000
    return result
