"""Tenancy: what an API key or a team may do (models, operations, rate limits, budgets).

A key listed under ``server.api_keys`` carries a policy in the config; a virtual key kept in
the key store carries the same policy as JSON. A team's policy applies to all its keys
together: a team budget is one budget shared by every key of the team.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from crossroads.config.base import _Strict


class BudgetConfig(_Strict):
    """A spend limit in USD over a calendar period (UTC): ``day``, ``month`` or ``total``."""

    usd: float = Field(gt=0)
    period: Literal["day", "month", "total"] = "month"


class PolicyConfig(_Strict):
    """What one key (or one team's keys together) may do; unset fields limit nothing."""

    models: list[str] | None = Field(
        None, description="model or entrypoint names the key may ask for; unset: any"
    )
    operations: list[Literal["chat", "completions", "embeddings"]] | None = Field(
        None, description="operations the key may use; unset: any"
    )
    rpm: int | None = Field(None, ge=1, description="requests per minute")
    tpm: int | None = Field(None, ge=1, description="tokens (prompt + completion) per minute")
    budgets: list[BudgetConfig] = []
    metadata: dict[str, str] = Field(
        {}, description="facts about the key that metadata signals can read"
    )

    @field_validator("budgets")
    @classmethod
    def _one_budget_per_period(cls, budgets: list[BudgetConfig]) -> list[BudgetConfig]:
        periods = [b.period for b in budgets]
        for period in dict.fromkeys(periods):
            if periods.count(period) > 1:
                raise ValueError(f"period {period!r} has more than one budget: keep one")
        return budgets

    @property
    def limited(self) -> bool:
        """Whether this policy limits anything (an empty policy costs a request nothing)."""
        return bool(
            self.rpm
            or self.tpm
            or self.budgets
            or self.models is not None
            or self.operations is not None
        )


class TeamConfig(_Strict):
    """A team: its keys share the team's policy (budgets, limits) on top of their own."""

    name: str = Field(min_length=1)
    policy: PolicyConfig = PolicyConfig()
