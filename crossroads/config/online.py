"""Online selection methods: bandits that learn from the gateway's own feedback.

``linucb`` and ``thompson`` are contextual (a ridge regression of quality on request
features per model); ``ema`` is a discounted running mean of quality per model. All three
maximise predicted quality − λ·estimated cost (``objective: {lambda: ...}``), keep their
statistics in the state backend (shared by every replica) and explore on at most
``max_explore`` of the requests.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from crossroads.config.base import _Strict


class OnlineFeatures(_Strict):
    """What a contextual bandit sees of a request: a bias, ``log(1 + prompt_tokens)`` scaled
    to ~[0, 1], each listed signal's match (and its value: a number as is, a string hashed
    into ``hash_slots`` one-hot slots), and the prompt embedding projected to
    ``embedding_dims`` by a fixed random matrix (seeded, the same on every replica)."""

    signals: list[str] = []
    prompt_tokens: bool = True
    hash_slots: int = Field(8, ge=1, le=64)
    embedding_dims: int = Field(0, ge=0, le=64)
    embedding: Literal["reuse", "compute"] = Field(
        "reuse",
        description="reuse: the embedding only when a signal already computed it (else zeros); "
        "compute: embed the prompt for selection if no signal did",
    )

    @field_validator("signals")
    @classmethod
    def _references(cls, value: list[str]) -> list[str]:
        for name in value:
            if ":" not in name:
                raise ValueError(
                    f"feature signal {name!r} must be 'kind:name' (e.g. 'domain:topic')"
                )
        return value


class OnlineDecay(_Strict):
    """Forgetting, for traffic that changes: statistics are kept in ``bucket_s`` buckets, the
    last ``buckets`` of them count, each one bucket older weighs ``discount`` times less."""

    bucket_s: float = Field(3600.0, ge=1)
    buckets: int = Field(24, ge=1, le=64)
    discount: float = Field(1.0, gt=0, le=1)


class WarmStart(_Strict):
    """Priors from an offline router artifact (``crossroads fit``): its predicted mean quality
    per model, worth ``strength`` observations. ``model_map``: artifact key → model name."""

    router: str
    model_map: dict[str, str] = {}
    strength: float = Field(20.0, ge=0)


class _OnlineSelection(_Strict):
    objective: dict[Literal["lambda"], float] | None = None
    max_explore: float = Field(
        0.1, ge=0, le=1, description="the probability that a request explores, at most"
    )
    decay: OnlineDecay | None = None
    warm_start: WarmStart | None = None
    priors: dict[str, float] = Field(
        {}, description="prior mean quality per model (overrides warm_start)"
    )
    prior_strength: float = Field(5.0, ge=0, description="observations a prior is worth")
    profile_prior: bool = Field(
        True,
        description="a model without a prior gets one from its price, fitted over the models "
        "that have one (instead of a cold start)",
    )
    feedback_ttl_s: float = Field(
        86400.0, gt=0, le=30 * 86400, description="feedback later than this is ignored"
    )
    sync_interval_s: float = Field(
        1.0, gt=0, le=600, description="how often statistics are exchanged with the backend"
    )
    seed: int | None = None

    @field_validator("priors")
    @classmethod
    def _unit_priors(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {m: q for m, q in value.items() if not 0 <= q <= 1}
        if bad:
            raise ValueError(f"priors are qualities in [0, 1]; got {bad}")
        return value


class LinUCBSelection(_OnlineSelection):
    """Disjoint LinUCB: per model a ridge regression of quality on the request features;
    the exploring choice is the highest ``mean + alpha * std``."""

    method: Literal["linucb"]
    alpha: float = Field(1.0, ge=0)
    ridge: float = Field(1.0, gt=0)
    features: OnlineFeatures = OnlineFeatures()


class ThompsonSelection(_OnlineSelection):
    """Linear Thompson sampling over the same regression: a model's probability of being
    chosen is its probability of being best under the posterior (``scale``: its width)."""

    method: Literal["thompson"]
    scale: float = Field(0.3, gt=0)
    ridge: float = Field(1.0, gt=0)
    samples: int = Field(128, ge=8, le=4096, description="posterior draws per request")
    features: OnlineFeatures = OnlineFeatures()


class EMASelection(_OnlineSelection):
    """A discounted mean of quality per model (no context), epsilon-greedy with
    ``epsilon = max_explore``; forgets by ``decay`` (default: 10-minute buckets, 0.8)."""

    method: Literal["ema"]
    decay: OnlineDecay | None = OnlineDecay(bucket_s=600, buckets=32, discount=0.8)


ONLINE_SELECTIONS = (LinUCBSelection, ThompsonSelection, EMASelection)
OnlineSelection = LinUCBSelection | ThompsonSelection | EMASelection


def online_problems(path: str, decision: object, signals: set[str]) -> list[tuple[str, str]]:
    """An online selection's references: its prior models are the decision's, its feature
    signals are declared."""
    selection = getattr(decision, "selection", None)
    if not isinstance(selection, ONLINE_SELECTIONS):
        return []
    models: list[str] = getattr(decision, "models", [])
    problems = [
        (f"{path}.selection.priors", f"{m!r} is not one of this decision's models {models}")
        for m in selection.priors
        if m not in models
    ]
    features = getattr(selection, "features", None)
    for j, name in enumerate(features.signals if features is not None else []):
        if name not in signals:
            known = ", ".join(sorted(signals)) or "(none defined)"
            problems.append(
                (
                    f"{path}.selection.features.signals[{j}]",
                    f"unknown signal {name!r}: declare it under 'signals' (known: {known})",
                )
            )
    return problems
