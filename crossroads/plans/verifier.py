"""A learned verifier: the probability that a cheap model's answer is good enough, from
features of the prompt and of the answer itself.

Prompt-only routers guess from the question whether the cheap model will manage; a
verifier reads what it answered. Features (:func:`answer_features`): sizes, the shape of the
answer (an explicit final answer, numbers, lines, code, repetition), hedging and refusal
words, cut at ``max_tokens``, its mean token logprob when the upstream gave one; with
``embed``, MiniLM embeddings of the prompt and the answer too. A logistic regression over
them is trained with ``crossroads fit-verifier`` on routing data that stores responses
(label: the answer's score reached ``good_at``), and its threshold is calibrated there on
the validation split to a quality or cost target.

>>> v = Verifier(embed=False)        # doctest: +SKIP
>>> v.fit(prompts, answers, labels)  # doctest: +SKIP
>>> v.predict(prompts, answers)      # p(good) per answer  # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossroads.exceptions import ConfigError, NotFittedError
from crossroads.plans.answers import _explicit
from crossroads.plans.arithmetic import calculations
from crossroads.plans.checks import _REFUSAL

if TYPE_CHECKING:
    import numpy as np

    from crossroads.plans.calls import Answer

FORMAT = "crossroads-verifier/1"
_HEDGES = re.compile(
    r"\b(maybe|perhaps|might|not sure|i think|i believe|possibly|approximately|roughly|"
    r"unclear|it depends|cannot be determined|assume|assuming|however|wait|mistake|actually)\b",
    re.IGNORECASE,
)
_NUMBERS = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
FEATURES = (
    "log_answer_chars",
    "log_prompt_chars",
    "answer_to_prompt",
    "lines",
    "numbers",
    "has_final",
    "final_in_prompt",
    "hedges",
    "refusal",
    "truncated",
    "code_blocks",
    "repeated_lines",
    "questions",
    "mean_logprob",
    "has_logprob",
    "calculations",
    "wrong_calculations",
    "wrong_share",
)


def answer_features(
    prompt: str, text: str, finish_reason: str | None = None, mean_logprob: float | None = None
) -> list[float]:
    """The hand-made features of one (prompt, answer) pair, in :data:`FEATURES` order."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    final = _explicit(text)
    numbers = _NUMBERS.findall(text)
    last = (final or (numbers[-1] if numbers else "")).strip()
    claims, wrong = calculations(text)
    return [
        math.log1p(len(text)),
        math.log1p(len(prompt)),
        min(len(text) / max(len(prompt), 1), 20.0),
        math.log1p(len(lines)),
        math.log1p(len(numbers)),
        float(final is not None),
        float(bool(last) and last in prompt),
        math.log1p(len(_HEDGES.findall(text))),
        float(bool(_REFUSAL.match(text[:200]))),
        float(finish_reason == "length"),
        float(text.count("```") // 2),
        1.0 - len(set(lines)) / len(lines) if lines else 0.0,
        math.log1p(text.count("?")),
        mean_logprob if mean_logprob is not None else 0.0,
        float(mean_logprob is not None),
        math.log1p(claims),
        math.log1p(wrong),
        wrong / claims if claims else 0.0,
    ]


class Verifier:
    """p(the answer is good) from :func:`answer_features` (and MiniLM embeddings with
    ``embed``). The constructor stores parameters; ``fit`` learns; ``threshold`` is set by
    calibration (default 0.5)."""

    def __init__(self, *, embed: bool = True, C: float = 1.0, good_at: float = 0.5) -> None:
        self.embed = embed
        self.C = C
        self.good_at = good_at
        self.threshold = 0.5

    def features(
        self,
        prompts: list[str],
        answers: list[str],
        extra: np.ndarray | None = None,
        vectors: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """The feature matrix: hand features, then (with ``embed``) the prompt and answer
        embeddings (``vectors``, else computed here)."""
        import numpy as np

        hand = np.array([answer_features(p, a) for p, a in zip(prompts, answers, strict=True)])
        if extra is not None:
            hand[:, : extra.shape[1]] = extra
        if not self.embed:
            return hand
        if vectors is None:
            from crossroads.signals.embedding import shared_embedder

            embedder = shared_embedder()
            vectors = (embedder.encode(prompts), embedder.encode([a[:2000] for a in answers]))
        p, a = vectors
        return np.hstack([hand, p, a, (p * a).sum(axis=1, keepdims=True)])

    def fit(self, x: np.ndarray, good: np.ndarray) -> Verifier:
        """Learn from a feature matrix and 0/1 labels (1: the answer was good)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if len(set(good.tolist())) < 2:
            raise ValueError("the verifier needs good and bad answers to learn from; got one kind")
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=2000))
        self.model_.fit(x, good)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """p(good) per row of a feature matrix."""
        if not hasattr(self, "model_"):
            raise NotFittedError(
                "This Verifier is not fitted yet. Call fit(...) or load an artifact with "
                "crossroads.plans.verifier.load_verifier(...)"
            )
        proba: np.ndarray = self.model_.predict_proba(x)[:, 1]
        return proba

    async def score(self, prompt: str, answer: Answer) -> float:
        """p(good) of one served-path answer (embeddings through the shared micro-batcher,
        so the event loop never waits on the encoder)."""
        import asyncio

        import numpy as np

        mean = answer.logprobs.value("mean_logprob") if answer.logprobs else None
        hand = np.array([answer_features(prompt, answer.text, answer.finish_reason, mean)])
        if self.embed:
            from crossroads.signals.embedding import shared_batcher

            batcher = shared_batcher()
            p, a = await asyncio.gather(
                batcher.encode(prompt[:4000]), batcher.encode(answer.text[:2000])
            )
            hand = np.hstack([hand, p[None, :], a[None, :], [[float(p @ a)]]])
        return float(self.predict(hand)[0])

    def save(self, path: str | Path) -> Path:
        """Write the artifact (joblib)."""
        import joblib

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump({"format": FORMAT, "verifier": self}, path)
        return path


def load_verifier(path: str | Path) -> Verifier:
    """A verifier artifact written by :meth:`Verifier.save`; a config error says what to do
    when it is missing or not one."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            [
                (
                    "plan",
                    f"verifier artifact {str(path)!r} not found: train one with crossroads fit-verifier",
                )
            ]
        )
    try:
        import joblib

        data: Any = joblib.load(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same config problem
        raise ConfigError(
            [("plan", f"cannot read verifier artifact {str(path)!r}: {exc}")]
        ) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError([("plan", f"{str(path)!r} is not a crossroads verifier artifact")])
    verifier: Verifier = data["verifier"]
    return verifier
