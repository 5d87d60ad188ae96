"""A cascade plan replayed on stored answers: what each stage accepts and serves, for every
setting of its thresholds, without calling a model.

A routing dataset that stores each model's response (``responses.parquet``) holds, per
prompt, the answer a stage's model would have given. The acceptance rules run over those
answers as :mod:`crossroads.plans.accept` runs them in the gateway — in order, each keeping
the answers it accepts, the first survivor served — vectorised over prompts:

- ``checks``: the same check functions over the stored text (nothing is cut offline, so
  ``truncated`` never fires);
- ``verifier``: the artifact's p(good) of each stage answer, kept at ``>= threshold``;
- ``agreement``: the same normalised final answers, or for free text the MiniLM cosine of
  the answers, kept at ``>= similarity``;
- ``confidence``: not replayable — no stored response carries logprobs.

The tunable numbers (a verifier's ``threshold``, an agreement's ``similarity``) are
:class:`Knob` s; :func:`stage_outcomes` gives a stage's outcome for each of their settings
and :func:`cascade_points` the cascade's cost and quality for every combination.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crossroads.config.plans import (
    AgreementAccept,
    CascadePlan,
    ChecksAccept,
    ConfidenceAccept,
    Stage,
    VerifierAccept,
)

if TYPE_CHECKING:
    import numpy as np

SIMILARITY_FLOOR = 1e-6  # ``similarity`` must be > 0: the setting that accepts any agreement


@dataclass
class StoredAnswers:
    """Per plan model (its config name): the stored answer, its score and its cost on each
    prompt; ``vectors(model)``: MiniLM embeddings of its answers (for free-text agreement)."""

    prompts: list[str]
    texts: dict[str, list[str]]
    quality: dict[str, np.ndarray]
    cost: dict[str, np.ndarray]
    vectors: Callable[[str], np.ndarray] | None = None
    verifier_scores: Callable[[str, str], np.ndarray] | None = None  # (artifact, model) -> p
    memo: dict[tuple[str, ...], Any] = field(default_factory=dict)

    def once(self, key: tuple[str, ...], compute: Callable[[], Any]) -> Any:
        """``compute()`` the first time ``key`` is asked for, the same value after."""
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]


@dataclass
class Knob:
    """One tunable number of a plan: ``stages[stage].accept[rule].<name>``, and the values
    to try (ascending: the first accepts the most)."""

    stage: int
    rule: int
    name: str
    grid: list[float] = field(default_factory=list)

    @property
    def path(self) -> str:
        """Where it sits in the plan (``stages[0].accept[1].threshold``)."""
        return f"stages[{self.stage}].accept[{self.rule}].{self.name}"


def check_replayable(plan: CascadePlan) -> None:
    """Raise ``ValueError`` naming what stored answers cannot replay."""
    for i, stage in enumerate(plan.stages):
        if stage.samples > 1:
            raise ValueError(
                f"stages[{i}] samples {stage.samples} answers per model, but a dataset stores "
                "one answer per model: replay it with samples: 1, or list distinct models"
            )
        for j, rule in enumerate(stage.accept):
            if isinstance(rule, ConfidenceAccept):
                raise ValueError(
                    f"stages[{i}].accept[{j}] is a confidence rule, and no stored response "
                    "carries logprobs: choose its threshold from gateway traces, or replace "
                    "it with a verifier (crossroads fit-verifier) to calibrate offline"
                )


def knobs(plan: CascadePlan) -> list[Knob]:
    """The tunable numbers of every stage but the last (whose rules never reject)."""
    found = []
    for i, stage in enumerate(plan.stages[:-1]):
        for j, rule in enumerate(stage.accept):
            if isinstance(rule, VerifierAccept):
                found.append(Knob(i, j, "threshold"))
            elif isinstance(rule, AgreementAccept) and rule.answer in ("auto", "text"):
                found.append(Knob(i, j, "similarity"))
    return found


def knob_scores(plan: CascadePlan, knob: Knob, data: StoredAnswers) -> np.ndarray:
    """Every score the knob's rule compares with its number, for grids: p(good) of each of
    the stage's answers, or the cosine of each pair of them."""
    import numpy as np

    stage = plan.stages[knob.stage]
    rule = stage.accept[knob.rule]
    if isinstance(rule, VerifierAccept):
        assert data.verifier_scores is not None
        return np.concatenate([data.verifier_scores(rule.verifier, m) for m in stage.models])
    assert data.vectors is not None
    vec = [data.vectors(m) for m in stage.models]
    pairs = [(a * b).sum(axis=1) for a, b in itertools.combinations(vec, 2)]
    return np.concatenate(pairs) if pairs else np.ones(1)


def knob_grid(knob: Knob, scores: np.ndarray, n: int) -> list[float]:
    """``n`` quantiles of ``scores`` and the two ends (accept all, accept none), inside the
    range the config allows."""
    import numpy as np

    values = np.quantile(scores, np.linspace(0, 1, max(n - 2, 1)))
    low = 0.0 if knob.name == "threshold" else SIMILARITY_FLOOR
    grid = np.unique(np.clip(np.concatenate([[low, 1.0], values]), low, 1.0))
    return [float(v) for v in grid]


def stage_outcome(
    stage: Stage, data: StoredAnswers, settings: dict[int, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Whether the stage accepts each prompt, and which of its models is served (position in
    ``stage.models``), with ``settings[rule index]`` replacing that rule's number."""
    import numpy as np

    n_rows = len(data.prompts)
    alive = np.ones((n_rows, len(stage.models)), dtype=bool)
    for j, rule in enumerate(stage.accept):
        if isinstance(rule, ChecksAccept):
            alive &= np.stack([_passes(data, m, tuple(rule.checks)) for m in stage.models], 1)
        elif isinstance(rule, VerifierAccept):
            assert data.verifier_scores is not None
            threshold = settings.get(j, rule.threshold)
            if threshold is None:
                from crossroads.plans.verifier import load_verifier

                threshold = load_verifier(rule.verifier).threshold
            p = np.stack([data.verifier_scores(rule.verifier, m) for m in stage.models], 1)
            alive &= p >= threshold
        elif isinstance(rule, AgreementAccept):
            alive = _agreeing(rule, stage, data, alive, settings.get(j, rule.similarity))
        else:  # check_replayable refused it
            raise ValueError(f"a {rule.rule} rule cannot be replayed on stored answers")
    accepted: np.ndarray = np.asarray(alive.any(axis=1))
    return accepted, alive.argmax(axis=1)


def _passes(data: StoredAnswers, model: str, checks: tuple[str, ...]) -> np.ndarray:
    import numpy as np

    from crossroads.plans.checks import failed_check
    from crossroads.types import Request

    request = Request("chat", "-", "openai_chat")
    passed: np.ndarray = data.once(
        ("checks", model, *checks),
        lambda: np.array(
            [failed_check(t, [], None, True, request, checks) is None for t in data.texts[model]]
        ),
    )
    return passed


def _agreeing(
    rule: AgreementAccept, stage: Stage, data: StoredAnswers, alive: np.ndarray, similarity: float
) -> np.ndarray:
    """The answers kept by agreement: the largest agreeing group of the survivors, if it has
    ``min_agree`` (else none), as :func:`crossroads.plans.accept._agreeing` decides."""
    import numpy as np

    n_rows, n = alive.shape
    has_key, same = data.once(
        ("keys", rule.answer, *stage.models), lambda: _same_keys(rule, stage, data)
    )
    same = same.copy()
    by_key = (has_key | ~alive).all(axis=1) | (rule.answer not in ("auto", "text"))
    if not by_key.all():
        vec = [data.vectors(m) for m in stage.models] if data.vectors is not None else None
        if vec is None:
            raise ValueError("free-text agreement needs the answers' embeddings")
        cosine = data.once(
            ("cosine", *stage.models),
            lambda: np.stack(
                [np.stack([(vec[i] * vec[j]).sum(axis=1) for j in range(n)], 1) for i in range(n)],
                1,
            ),
        )
        near = (cosine >= similarity) | np.eye(n, dtype=bool)[None]
        same = np.where(by_key[:, None, None], same, near)
    same &= alive[:, None, :] & alive[:, :, None]
    size = same.sum(axis=2)
    best = size.argmax(axis=1)
    group = same[np.arange(n_rows), best]
    ok = size.max(axis=1) >= rule.min_agree
    kept: np.ndarray = group & ok[:, None]
    return kept


def _same_keys(
    rule: AgreementAccept, stage: Stage, data: StoredAnswers
) -> tuple[np.ndarray, np.ndarray]:
    """Which answers have a normalised final answer, and ``same[r, i, j]``: answers ``i``
    and ``j`` have the same one on prompt ``r``."""
    import numpy as np

    from crossroads.plans.answers import final_answer

    n = len(stage.models)
    keys = [[final_answer(t, rule.answer) for t in data.texts[m]] for m in stage.models]
    same = np.zeros((len(data.prompts), n, n), dtype=bool)
    for i, j in itertools.product(range(n), repeat=2):
        same[:, i, j] = [a is not None and a == b for a, b in zip(keys[i], keys[j], strict=True)]
    return np.array([[k is not None for k in col] for col in keys]).T, same


def serve_rows(
    plan: CascadePlan, data: StoredAnswers, outcomes: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Per prompt, the served answer's quality and the cascade's cost (every stage it called)
    given each stage's outcome (``outcomes[i]`` for stage ``i``, the last excluded), and the
    share of prompts each stage answered."""
    import numpy as np

    n_rows = len(data.prompts)
    rows = np.arange(n_rows)
    open_ = np.ones(n_rows, dtype=bool)
    cost = np.zeros(n_rows)
    quality = np.zeros(n_rows)
    shares = []
    for stage, (accepted, served) in zip(plan.stages[:-1], outcomes, strict=True):
        cost += np.where(open_, sum(data.cost[m] for m in stage.models), 0.0)
        here = open_ & accepted
        q = np.stack([data.quality[m] for m in stage.models], 1)[rows, served]
        quality = np.where(here, q, quality)
        shares.append(float(here.mean()))
        open_ &= ~accepted
    last = plan.stages[-1].models[0]
    cost += np.where(open_, data.cost[last], 0.0)
    quality = np.where(open_, data.quality[last], quality)
    return quality, cost, [*shares, float(open_.mean())]


def cascade_points(
    plan: CascadePlan,
    data: StoredAnswers,
    stage_options: list[list[tuple[np.ndarray, np.ndarray]]],
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, ...]]]:
    """Mean cost and mean quality of the cascade for every combination of stage outcomes
    (``stage_options[i]``: the outcomes of stage ``i`` to try), the share of prompts each
    stage answered, and the combinations (one option index per stage)."""
    import numpy as np

    combos = list(itertools.product(*(range(len(o)) for o in stage_options)))
    points = np.empty((len(combos), 2))
    shares = np.empty((len(combos), len(plan.stages)))
    for c, combo in enumerate(combos):
        chosen = [stage_options[i][k] for i, k in enumerate(combo)]
        quality, cost, shares[c] = serve_rows(plan, data, chosen)
        points[c] = cost.mean(), quality.mean()
    return points, shares, combos
