"""Policy enforcement around routing: what a caller may ask for, its rate limits, its budgets.

Before routing, ``policy.models`` / ``policy.operations`` are checked (403) and, if a rule
reads a ``budget`` signal, the caller's remaining budget fraction is read. After routing,
one atomic state call (:meth:`~crossroads.state.StateBackend.admit`) counts the request in
every rate window of the caller's key and team and holds the chosen model's estimated cost
against every budget; with ``on_budget: downgrade`` the same call takes the most expensive
cheaper eligible candidate that fits. When the request ends, whatever happened (answer,
stream, error, client gone), :meth:`Limits.settle` releases the hold and charges the actual
cost, off the request path. Only the :class:`~crossroads.types.Caller` is read, so keys from
the config and keys from a key store are limited alike.
"""

from __future__ import annotations

import calendar
import math
import time
from typing import Any

from crossroads.config import Config, Decision, DefaultDecision, PolicyConfig, StateConfig
from crossroads.exceptions import (
    BudgetExceededError,
    LimitsUnavailableError,
    PolicyDeniedError,
    RateLimitError,
    StateUnavailableError,
)
from crossroads.state import NANO, Budget, GuardedState, Settlement, Window, open_state
from crossroads.state.settler import Settler
from crossroads.types import (
    Caller,
    RateWindow,
    Request,
    Reservation,
    RoutingRequest,
    Trace,
)

WINDOW_S = 60
WINDOW_TTL_S = 2 * WINDOW_S
DAY_TTL_S = 2 * 86400  # a day's counters outlive it a little (late settlements)
MONTH_TTL_S = 32 * 86400
Scope = tuple[str, PolicyConfig]  # ("key:ci", policy) or ("team:search", policy)


class Limits:
    """One per worker: the state backend (lazily connected), the settlement queue, and
    which decisions downgrade rather than refuse."""

    def __init__(self, config: Config, budget_signal: bool = False) -> None:
        self.config = config
        self.budget_signal = budget_signal
        state = config.state or StateConfig(share_dispatch=False)
        self.settings = state
        timeout = state.timeout_ms / 1000
        self.state = GuardedState(
            open_state(state.backend, timeout_s=timeout), timeout, state.retry_after_s
        )
        self.settler = Settler(self.state, state.max_pending_settlements)
        self.prefix = state.key_prefix
        self.expected_output = config.server.expected_output_tokens
        self.used = False
        self._downgrade = _downgrading(config)

    def reconfigure(self, config: Config) -> None:
        """Follow a reloaded config (which decisions downgrade); state and policies stay."""
        self.config = config
        self._downgrade = _downgrading(config)

    # ------------------------------------------------------------------ before routing

    def governs(self, caller: Caller) -> bool:
        """Whether the caller's key or team has a policy that limits anything."""
        policy, team = caller.policy, caller.team_policy
        return (policy is not None and policy.limited) or (team is not None and team.limited)

    def check(self, request: Request, caller: Caller) -> None:
        """403 unless every policy of the caller allows the model and the operation."""
        for scope, policy in _scopes(caller):
            if policy.models is not None and request.model not in policy.models:
                raise PolicyDeniedError(
                    f"The {_label(scope)} may not use model {request.model!r}; it may use: "
                    f"{', '.join(policy.models) or '(none)'}.",
                    param="model",
                    code="model_not_allowed",
                )
            if policy.operations is not None and request.operation not in policy.operations:
                raise PolicyDeniedError(
                    f"The {_label(scope)} may not use {request.operation} requests; it may "
                    f"use: {', '.join(policy.operations) or '(none)'}.",
                    code="operation_not_allowed",
                )

    async def before_route(self, request: Request, facts: RoutingRequest) -> None:
        """The policy check, and the remaining budget fraction when a rule reads it."""
        self.check(request, facts.caller)
        if self.budget_signal:
            facts.budget_remaining = await self.remaining(facts.caller)

    async def remaining(self, caller: Caller, now: float | None = None) -> float | None:
        """The fraction left of the caller's tightest budget (None: no budget, or the state
        backend is unavailable)."""
        now = time.time() if now is None else now
        budgets = self._budgets(_scopes(caller), now)
        if not budgets:
            return None
        keys = [b.key for b, _ in budgets]
        try:
            used = await self.state.call(lambda: self.state.backend.budget_used(keys, now))
        except StateUnavailableError:
            return None
        self.used = True
        return max(
            0.0, min((b.limit - u) / b.limit for (b, _), u in zip(budgets, used, strict=True))
        )

    # ------------------------------------------------------------------ admission

    async def admit(self, facts: RoutingRequest, trace: Trace, now: float | None = None) -> None:
        """Count the request against the caller's rate windows and hold its estimated cost
        against its budgets, or raise 429 (rate limit, budget) / 503 (state down, closed)."""
        assert trace.route is not None and facts.request is not None
        now = time.time() if now is None else now
        scopes = _scopes(facts.caller)
        tokens = facts.prompt_tokens + (facts.max_output_tokens or self.expected_output)
        minute = int(now // WINDOW_S)
        windows: list[Window] = []
        rates: list[tuple[str, str]] = []  # (scope, unit) of each window
        for scope, policy in scopes:
            if policy.rpm:
                key = f"{self.prefix}rate:{scope}:rpm:{minute}"
                windows.append(Window(key, 1, policy.rpm, WINDOW_TTL_S))
                rates.append((scope, "requests"))
            if policy.tpm:
                key = f"{self.prefix}rate:{scope}:tpm:{minute}"
                windows.append(Window(key, tokens, policy.tpm, WINDOW_TTL_S))
                rates.append((scope, "tokens"))
        budgets = self._budgets(scopes, now)
        if not windows and not budgets:
            return
        self.used = True
        costs, models = self._costs(facts, trace) if budgets else ([], [])
        held = [b for b, _ in budgets]
        until = now + self.settings.hold_ttl_s
        try:
            result = await self.state.call(
                lambda: self.state.backend.admit(windows, held, costs, trace.trace_id, until, now)
            )
        except StateUnavailableError:
            self._unchecked(trace, windows, budgets)
            return
        reset = WINDOW_S - now % WINDOW_S
        if windows:
            trace.rate_limits = [
                RateWindow(scope, unit, w.limit, max(0, w.limit - used), reset)  # type: ignore[arg-type]
                for (scope, unit), w, used in zip(rates, windows, result.window_used, strict=False)
            ]
        if result.refused == "window":
            scope, unit = rates[result.window]
            raise _rate_error(scope, unit, windows[result.window], result.window_used[-1], reset)
        if result.refused == "budget":
            raise self._budget_error(budgets, result.budget_used, costs, models, now)
        token_keys = [
            w.key for w, (_, unit) in zip(windows, rates, strict=True) if unit == "tokens"
        ]
        if not budgets:
            if token_keys:
                trace.reservation = Reservation(
                    trace.trace_id, trace.route.model, 0.0, tokens=tokens, token_keys=token_keys
                )
            return
        choice = result.choice
        cost = costs[choice] / NANO
        reservation = Reservation(
            trace.trace_id,
            models[choice],
            cost,
            budgets=[name for _, name in budgets],
            keys=[b.key for b in held],
            remaining_usd=min(
                (b.limit - u - costs[choice]) / NANO
                for b, u in zip(held, result.budget_used, strict=True)
            ),
            tokens=tokens,
            token_keys=token_keys,
        )
        if choice > 0:
            _downgrade(trace, models[choice], cost)
            reservation.downgraded_from = models[0]
        # What the hold does not cover is not tried either (fallback across candidates).
        for c in trace.route.candidates:
            if (
                c.eligible
                and c.model != trace.route.model
                and round(c.estimated_cost * NANO) > costs[choice]
            ):
                c.eligible, c.reason = False, f"over budget: more than the ${cost:.6f} held"
        trace.reservation = reservation

    def _budgets(self, scopes: list[Scope], now: float) -> list[tuple[Budget, str]]:
        out = []
        for scope, policy in scopes:
            for b in policy.budgets:
                tag, ttl, _ = _period(b.period, now)
                budget = Budget(f"{self.prefix}budget:{scope}:{tag}", round(b.usd * NANO), ttl)
                out.append((budget, f"{scope}/{b.period}"))
        return out

    def _costs(self, facts: RoutingRequest, trace: Trace) -> tuple[list[int], list[str]]:
        """Candidate costs to hold, in nano-USD: the chosen model's estimate, then (with
        ``on_budget: downgrade``) every cheaper eligible candidate, most expensive first."""
        route = trace.route
        assert route is not None and facts.request is not None
        chosen = next((c for c in route.candidates if c.model == route.model), None)
        estimate = route.estimated_cost if chosen is None else chosen.estimated_cost
        costs, models = [round(estimate * NANO)], [route.model]
        if (facts.request.model, route.decision) in self._downgrade:
            cheaper = sorted(
                (c for c in route.candidates if c.eligible and c.estimated_cost < estimate),
                key=lambda c: -c.estimated_cost,
            )
            costs += [round(c.estimated_cost * NANO) for c in cheaper]
            models += [c.model for c in cheaper]
        return costs, models

    def _unchecked(
        self, trace: Trace, windows: list[Window], budgets: list[tuple[Budget, str]]
    ) -> None:
        """The state backend is down: refuse (closed) or serve unchecked (open)."""
        policy = self.settings.on_error
        closed = [
            feature
            for feature, applies, rule in (
                ("budgets", bool(budgets), policy.budgets),
                ("rate_limits", bool(windows), policy.rate_limits),
            )
            if applies and rule == "closed"
        ]
        if closed:
            retry = max(1.0, self.state.retry_in())
            raise LimitsUnavailableError(
                f"The gateway cannot check this key's {' and '.join(closed).replace('_', ' ')} "
                f"now (its state backend is unavailable), and state.on_error.{closed[0]} is "
                f"'closed', so the request was not served. Retry in {retry:.0f} s.",
                retry_after=retry,
            )
        assert trace.route is not None
        if budgets:  # settled (charged) once the backend is back
            trace.reservation = Reservation(
                trace.trace_id,
                trace.route.model,
                0.0,
                budgets=[name for _, name in budgets],
                keys=[b.key for b, _ in budgets],
                error="state backend unavailable: served unchecked (state.on_error: open)",
            )

    def _budget_error(
        self,
        budgets: list[tuple[Budget, str]],
        used: list[int],
        costs: list[int],
        models: list[str],
        now: float,
    ) -> BudgetExceededError:
        smallest = min(costs)
        index = next(
            (j for j, (b, _) in enumerate(budgets) if used[j] + smallest > b.limit),
            next(j for j, (b, _) in enumerate(budgets) if used[j] + costs[0] > b.limit),
        )
        budget, name = budgets[index]
        scope, _, period = name.rpartition("/")
        _, _, reset = _period(period, now)
        when = f", resets in {_duration(reset)}" if reset is not None else ""
        also = " (and no cheaper candidate fits)" if len(costs) > 1 else ""
        headers = {"x-should-retry": "false"}
        if reset is not None:
            headers["retry-after"] = str(math.ceil(reset))
        return BudgetExceededError(
            f"Budget exceeded: the {_label(scope)} has {_usd(used[index])} of its "
            f"{_usd(budget.limit)} {_PERIODS[period]} budget spent or held by requests in "
            f"flight{when}; this request needs up to {_usd(costs[0])} on model "
            f"{models[0]!r}{also}. Use a cheaper model, lower max_tokens, or raise the budget.",
            headers=headers,
        )

    # ------------------------------------------------------------------ settlement

    def settle(self, trace: Trace) -> None:
        """Release the request's hold and charge its actual cost (once; off the request
        path). A request that got no answer is charged nothing."""
        reservation = trace.reservation
        if reservation is None or reservation.settled_usd is not None:
            return
        cost = trace.cost or 0.0
        reservation.settled_usd = cost
        windows: list[tuple[str, int]] = []
        if reservation.token_keys:
            usage = trace.usage
            actual = usage.prompt_tokens + usage.completion_tokens if usage else 0
            windows = [(key, actual - reservation.tokens) for key in reservation.token_keys]
        budgets = [Budget(key, 0, _ttl_of(key)) for key in reservation.keys]
        marker = f"{self.prefix}settled:{reservation.hold_id}"
        self.settler.put(
            Settlement(budgets, reservation.hold_id, round(cost * NANO), windows, marker)
        )

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Write pending settlements (at most ``timeout_s``), then close the backend."""
        await self.settler.drain(timeout_s)
        await self.state.backend.aclose()

    def stats(self) -> dict[str, Any]:
        """For ``/ready``: the backend's health and the settlement queue."""
        return {**self.state.stats(), "settlements": self.settler.stats()}


def may_use(caller: Caller, name: str) -> bool:
    """Whether every policy of the caller (its key's, its team's) lets it ask for the model
    or entrypoint ``name`` (what ``GET /v1/models`` shows it)."""
    return all(policy.models is None or name in policy.models for _, policy in _scopes(caller))


def ratelimit_headers(windows: list[RateWindow]) -> list[tuple[bytes, bytes]]:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` of the tightest window of
    each unit (OpenAI's names; reset as a duration, e.g. ``17s``)."""
    headers = []
    for unit in ("requests", "tokens"):
        tight = min((w for w in windows if w.unit == unit), key=lambda w: w.remaining, default=None)
        if tight is not None:
            headers += [
                (b"x-ratelimit-limit-" + unit.encode(), str(tight.limit).encode()),
                (b"x-ratelimit-remaining-" + unit.encode(), str(tight.remaining).encode()),
                (b"x-ratelimit-reset-" + unit.encode(), f"{math.ceil(tight.reset_s)}s".encode()),
            ]
    return headers


def _scopes(caller: Caller) -> list[Scope]:
    scopes = []
    if caller.policy is not None:
        scopes.append((f"key:{caller.key_name}", caller.policy))
    if caller.team_policy is not None:
        scopes.append((f"team:{caller.team}", caller.team_policy))
    return scopes


def _label(scope: str) -> str:
    kind, _, name = scope.partition(":")
    return f"{kind} {name!r}"


_PERIODS = {"day": "daily (UTC)", "month": "monthly (UTC)", "total": "total"}


def _period(period: str, now: float) -> tuple[str, int | None, float | None]:
    """The counter tag of the period ``now`` falls in, its counters' TTL and the seconds
    until it ends (None: never)."""
    if period == "total":
        return "total", None, None
    t = time.gmtime(now)
    if period == "day":
        return f"d{t.tm_year:04d}{t.tm_mon:02d}{t.tm_mday:02d}", DAY_TTL_S, 86400 - now % 86400
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    end = calendar.timegm((year, month, 1, 0, 0, 0))
    return f"m{t.tm_year:04d}{t.tm_mon:02d}", MONTH_TTL_S, end - now


def _ttl_of(key: str) -> int | None:
    tag = key.rpartition(":")[2]
    return None if tag == "total" else DAY_TTL_S if tag.startswith("d") else MONTH_TTL_S


def _usd(nano: int) -> str:
    """Dollars to the cent, or every significant digit under a cent: ``$4.98``,
    ``$0.0000325``."""
    usd = nano / NANO
    return f"${usd:,.2f}" if usd >= 0.01 or usd == 0 else f"${usd:.9f}".rstrip("0")


def _duration(seconds: float) -> str:
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours < 48 else f"{hours // 24} days"


def _rate_error(scope: str, unit: str, window: Window, used: int, reset: float) -> RateLimitError:
    wait = math.ceil(reset)
    name = "rpm" if unit == "requests" else "tpm"
    if unit == "tokens" and window.cost > window.limit:
        detail = (
            f"this request alone counts {window.cost} tokens (prompt plus max_tokens), more "
            f"than the limit: lower max_tokens or shorten the prompt"
        )
    elif unit == "tokens":
        detail = f"{used} are used this minute and this request counts {window.cost}"
        detail += f" (prompt plus max_tokens); retry in {wait} s"
    else:
        detail = f"retry in {wait} s"
    return RateLimitError(
        f"Rate limit reached: the {_label(scope)} allows {window.limit} {unit} per minute "
        f"(policy.{name}); {detail}.",
        headers={"retry-after": str(wait)},
    )


def _downgrade(trace: Trace, model: str, cost: float) -> None:
    route = trace.route
    assert route is not None
    route.rule_path.append(f"on_budget: downgrade {route.model} -> {model}")
    route.model, route.estimated_cost = model, cost


def _downgrading(config: Config) -> set[tuple[str, str]]:
    """(entrypoint, decision) pairs whose decision says ``on_budget: downgrade``."""
    by_name = {d.name: d for d in config.decisions}
    out: set[tuple[str, str]] = set()
    for entry in config.entrypoints:
        decisions = [by_name[n] for n in entry.decisions] if entry.decisions else config.decisions
        default = entry.default or config.default_decision
        candidates: list[Decision | DefaultDecision] = [*decisions, default]
        for d in candidates:
            if d.on_budget == "downgrade":
                out.add((entry.name, d.name))
    return out
