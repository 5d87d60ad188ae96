"""Plans: how a decision calls its models when one call is not the whole story.

A decision without ``plan`` makes one call (its chosen model, then fallbacks). With one::

    plan:
      kind: cascade                      # cheap first; escalate when the answer is rejected
      stages:
        - models: [small, small-b]       # in parallel
          accept:
            - {rule: checks}             # not empty, no refusal, not cut, JSON/code valid
            - {rule: agreement}          # the two normalised final answers agree
        - models: [big]                  # the last stage's answer is served as it is

    plan: {kind: fanout, models: [a, b, c], merge: vote}

    plan: {kind: cache, similarity: 0.95, ttl_s: 600, then: {kind: cascade, ...}}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from crossroads.config.base import _Strict, _tagged
from crossroads.config.signals import PiiType

CheckName = Literal["empty", "refusal", "truncated", "json", "code", "arithmetic"]
CHECKS: tuple[CheckName, ...] = ("empty", "refusal", "truncated", "json", "code")
AnswerKind = Literal["auto", "choice", "number", "short", "text"]


class ChecksAccept(_Strict):
    """Accept unless a simple check fails: ``empty`` answer, ``refusal``, ``truncated`` at
        ``max_tokens``, ``json`` that does not parse or violates the request's schema (and tool
        call arguments that violate the tool's), ``code`` blocks that do not parse (Python); and
    when listed, ``arithmetic``: a written calculation (``16 - 3 = 12``) is wrong."""

    rule: Literal["checks"]
    checks: list[CheckName] = list(CHECKS)


class AgreementAccept(_Strict):
    """Accept when at least ``min_agree`` of the stage's answers agree: equal normalised
    final answers (``choice``: a letter, ``number``, ``short`` text; ``auto`` guesses per
    answer), or for free ``text`` a MiniLM cosine similarity of at least ``similarity``."""

    rule: Literal["agreement"]
    min_agree: int = Field(2, ge=2)
    answer: AnswerKind = "auto"
    similarity: float = Field(0.9, gt=0, le=1)


class ConfidenceAccept(_Strict):
    """Accept when the model is confident: the mean or the least token logprob at least
    ``threshold``, or the first token's entropy (nats, over the top alternatives) at most
    ``threshold``. Logprobs are asked for automatically; an upstream that returns none
    (Anthropic) makes the rule reject."""

    rule: Literal["confidence"]
    metric: Literal["mean_logprob", "min_logprob", "first_token_entropy"] = "mean_logprob"
    threshold: float
    top_logprobs: int = Field(5, ge=1, le=20)


class VerifierAccept(_Strict):
    """Accept when a learned verifier (``crossroads fit-verifier``) gives the answer a
    probability of being good of at least ``threshold`` (default: the calibrated threshold
    stored in the artifact)."""

    rule: Literal["verifier"]
    verifier: str
    threshold: float | None = Field(None, ge=0, le=1)


if TYPE_CHECKING:
    AcceptRule = ChecksAccept | AgreementAccept | ConfidenceAccept | VerifierAccept
else:
    AcceptRule = _tagged(
        "rule", None, ChecksAccept, AgreementAccept, ConfidenceAccept, VerifierAccept
    )


class Stage(_Strict):
    """One stage of a cascade: its models are called in parallel (each ``samples`` times,
    at ``temperature`` when sampling), and every ``accept`` rule must pass for the stage's
    answer to be served. ``accept_prefix_tokens``: for a streamed answer, decide on its
    first N tokens and stream the rest live (rules that need the whole answer still wait)."""

    models: list[str] = Field(min_length=1)
    samples: int = Field(1, ge=1, le=8)
    temperature: float | None = Field(None, ge=0, le=2)
    accept: list[AcceptRule] = []
    accept_prefix_tokens: int | None = Field(None, ge=1)


class CascadePlan(_Strict):
    """Stages in order; escalate to the next when the stage's answer is rejected (or its
    calls fail). The last stage's answer is served whatever its rules say."""

    kind: Literal["cascade"]
    stages: list[Stage] = Field(min_length=2)

    @model_validator(mode="after")
    def _reachable(self) -> CascadePlan:
        for i, stage in enumerate(self.stages[:-1]):
            if not stage.accept:
                raise ValueError(
                    f"stages[{i}] has no 'accept' rules, so it always answers and the stages "
                    "after it are never reached: add rules such as [{rule: checks}]"
                )
        for i, stage in enumerate(self.stages):
            calls = len(stage.models) * stage.samples
            for rule in stage.accept:
                if isinstance(rule, AgreementAccept) and calls < rule.min_agree:
                    raise ValueError(
                        f"stages[{i}]: agreement needs {rule.min_agree} answers but the stage "
                        f"makes {calls}: list more models or raise 'samples'"
                    )
        return self


class FanoutPlan(_Strict):
    """Ask every model at once and merge: ``first`` acceptable answer (the losers are
    cancelled), ``vote`` (majority of normalised answers), ``judge`` (model ``judge``
    picks one), ``best_of`` (highest ``verifier`` probability)."""

    kind: Literal["fanout"]
    models: list[str] = Field(min_length=2)
    merge: Literal["first", "vote", "judge", "best_of"] = "vote"
    accept: list[AcceptRule] = []  # what ``first`` counts as acceptable (default: checks)
    answer: AnswerKind = "auto"  # how ``vote`` normalises answers
    judge: str | None = None
    verifier: str | None = None

    @model_validator(mode="after")
    def _merge_needs(self) -> FanoutPlan:
        if self.merge == "judge" and self.judge is None:
            raise ValueError("merge: judge needs 'judge': the model that picks the answer")
        if self.merge == "best_of" and self.verifier is None:
            raise ValueError("merge: best_of needs 'verifier': a crossroads fit-verifier artifact")
        return self


class CachePlan(_Strict):
    """A precision-first semantic cache in front of ``then`` (one call when absent): an
    exact match, else the most similar cached prompt (MiniLM cosine at least
    ``similarity``) of the same tenant, decision and request shape, younger than
    ``ttl_s``. Answers are cached only when complete (not cut, no tool call)."""

    kind: Literal["cache"]
    similarity: float = Field(0.97, gt=0, le=1)
    ttl_s: float = Field(3600, gt=0)
    max_entries: int = Field(10000, ge=1)
    exact_only: bool = False
    then: CascadePlan | FanoutPlan | None = None


class RedactPlan(_Strict):
    """Mask personal data and secrets in the request's messages before any model sees it:
    each finding of the ``pii`` detectors (of ``types``, default all) becomes its type in
    capitals (``[EMAIL]``, ``[CREDIT_CARD]``), then ``then`` runs (one call when absent).
    The request is sent as crossroads renders it (not passed through as received)."""

    kind: Literal["redact"]
    types: list[PiiType] = []
    then: CascadePlan | FanoutPlan | CachePlan | None = None


if TYPE_CHECKING:
    PlanConfig = CascadePlan | FanoutPlan | CachePlan | RedactPlan
else:
    PlanConfig = _tagged("kind", None, CascadePlan, FanoutPlan, CachePlan, RedactPlan)


def plan_models(plan: CascadePlan | FanoutPlan | CachePlan | RedactPlan) -> list[tuple[str, str]]:
    """Every ``(path, model name)`` a plan calls, for the reference check."""
    if isinstance(plan, CachePlan | RedactPlan):
        inner = plan_models(plan.then) if plan.then is not None else []
        return [(f"then.{path}", name) for path, name in inner]
    if isinstance(plan, CascadePlan):
        return [
            (f"stages[{i}].models[{j}]", name)
            for i, stage in enumerate(plan.stages)
            for j, name in enumerate(stage.models)
        ]
    found = [(f"models[{j}]", name) for j, name in enumerate(plan.models)]
    return found + ([("judge", plan.judge)] if plan.judge is not None else [])
