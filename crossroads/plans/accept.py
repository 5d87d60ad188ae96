"""Acceptance rules: whether a stage's answers are good enough to serve.

The rules of a stage run in order over its answers, each keeping the answers it accepts:
``checks`` drops answers that fail a simple check, ``confidence`` those whose logprobs say
the model was unsure, ``verifier`` those a learned classifier doubts, and ``agreement``
keeps the largest group of answers that agree, if it has at least ``min_agree``. The stage
is accepted when an answer survives every rule; the first survivor (in the stage's model
order) is served. A rejection names the rule that emptied the list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crossroads.config.plans import (
    AcceptRule,
    AgreementAccept,
    ChecksAccept,
    ConfidenceAccept,
    VerifierAccept,
)
from crossroads.plans.answers import answer_key
from crossroads.plans.checks import failed_check
from crossroads.types import Request, RoutingRequest

if TYPE_CHECKING:
    from crossroads.plans.calls import Answer


@dataclass(slots=True)
class Judgement:
    """A stage's outcome: the answer to serve (``None``: rejected), why, the deciding score,
    and why each dropped answer was dropped (by position)."""

    chosen: Answer | None
    reason: str
    score: float | None = None
    dropped: dict[int, str] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)


class Acceptance:
    """The compiled rules of one stage (or of a fan-out's ``first``)."""

    def __init__(self, rules: list[AcceptRule]) -> None:
        self.rules = rules

    def prepare(self) -> Acceptance:
        """Load what the rules need (verifier artifacts), once at start-up."""
        from crossroads.plans.verifier import load_verifier

        self.verifiers_ = {
            r.verifier: load_verifier(r.verifier)
            for r in self.rules
            if isinstance(r, VerifierAccept)
        }
        return self

    @property
    def logprobs(self) -> int | None:
        """How many top alternatives per token the rules need (``None``: no logprobs)."""
        wanted = [r.top_logprobs for r in self.rules if isinstance(r, ConfidenceAccept)]
        return max(wanted) if wanted else None

    @property
    def prefix_ok(self) -> bool:
        """Whether the rules can decide on a streamed prefix (agreement and the verifier
        compare whole answers)."""
        return all(isinstance(r, ChecksAccept | ConfidenceAccept) for r in self.rules)

    async def judge(
        self, answers: list[Answer], request: Request, facts: RoutingRequest
    ) -> Judgement:
        """Run the rules over ``answers`` (the stage's successful calls, in model order)."""
        alive = list(range(len(answers)))
        dropped: dict[int, str] = {}
        scores: dict[int, float] = {}
        score: float | None = None
        if not alive:
            return Judgement(None, "every call of the stage failed")
        for rule in self.rules:
            if isinstance(rule, ChecksAccept):
                for i in alive:
                    a = answers[i]
                    why = failed_check(
                        a.text, a.tool_calls, a.finish_reason, a.complete, request, rule.checks
                    )
                    if why is not None:
                        dropped[i] = why
            elif isinstance(rule, ConfidenceAccept):
                for i in alive:
                    logprobs = answers[i].logprobs
                    value = logprobs.value(rule.metric) if logprobs is not None else None
                    if value is None:
                        dropped[i] = "confidence: the upstream returned no logprobs"
                        continue
                    scores[i] = score = value
                    ok = (
                        value <= rule.threshold
                        if rule.metric == "first_token_entropy"
                        else value >= rule.threshold
                    )
                    if not ok:
                        side = "above" if rule.metric == "first_token_entropy" else "below"
                        dropped[i] = (
                            f"confidence: {rule.metric} {value:.4g} {side} {rule.threshold:g}"
                        )
            elif isinstance(rule, VerifierAccept):
                verifier = self.verifiers_[rule.verifier]
                threshold = rule.threshold if rule.threshold is not None else verifier.threshold
                for i in alive:
                    p = await verifier.score(facts.text, answers[i])
                    scores[i] = score = p
                    if p < threshold:
                        dropped[i] = f"verifier: p(good) {p:.3f} below {threshold:.3f}"
            else:
                survivors = [i for i in alive if i not in dropped]
                group, share, why = await _agreeing(rule, [answers[i] for i in survivors], request)
                score = share
                keep = {survivors[j] for j in group}
                for i in survivors:
                    if i not in keep:
                        dropped[i] = why
            alive = [i for i in alive if i not in dropped]
            if not alive:
                reasons = list(dict.fromkeys(dropped.values()))
                return Judgement(None, "; ".join(reasons)[:300], score, dropped, scores)
        return Judgement(answers[alive[0]], "accepted", score, dropped, scores)


async def _agreeing(
    rule: AgreementAccept, answers: list[Answer], request: Request
) -> tuple[list[int], float, str]:
    """The largest group of agreeing answers if it reaches ``min_agree`` (else empty), the
    share of answers in the largest group, and why the others were dropped."""
    n = len(answers)
    if n < rule.min_agree:
        return [], 0.0, f"agreement: {n} answer(s), {rule.min_agree} needed"
    json_mode = request.response_format is not None and request.response_format.type != "text"
    keys = [answer_key(a.text, a.tool_calls, json_mode, rule.answer) for a in answers]
    if all(k is not None for k in keys) or rule.answer not in ("auto", "text"):
        groups: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            if key is not None:
                groups.setdefault(key, []).append(i)
        best = max(groups.values(), key=len, default=[])
    else:
        best = await _similar(rule.similarity, [a.text for a in answers])
    share = len(best) / n
    if len(best) < rule.min_agree:
        return (
            [],
            share,
            f"agreement: at most {len(best)} of {n} answers agree, {rule.min_agree} needed",
        )
    return best, share, "agreement: not in the agreeing group"


async def _similar(threshold: float, texts: list[str]) -> list[int]:
    """The largest set of texts within ``threshold`` cosine of one of them (MiniLM)."""
    import asyncio

    from crossroads.signals.embedding import shared_batcher

    batcher = shared_batcher()
    vectors: list[Any] = await asyncio.gather(*(batcher.encode(t[:2000]) for t in texts))
    best: list[int] = []
    for i, v in enumerate(vectors):
        near = [j for j, w in enumerate(vectors) if j == i or float(v @ w) >= threshold]
        if len(near) > len(best):
            best = near
    return best
