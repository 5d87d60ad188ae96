"""``crossroads promote``: switch the served router artifact to a candidate only when logged
traffic shows, off-policy, that the candidate earns more reward.

The data are the traces with feedback. Each gives the choice the live config made (the
route's model, ``a``), the chance it had (``route.propensity``, ``p``), the reward ``r``
and the candidate's choice ``c`` on the same request: its ``route.shadow`` when the
candidate ran as the shadow (``selection.shadow``), else, when the trace kept its prompt
(``store.prompts``), the candidate artifact scored on it.

- The live policy is the one that logged the traffic, so its value is the mean reward.
- The candidate's is the self-normalised importance-sampling estimate (SNIPS) over the
  traces where it agrees with the logged choice: ``Σ 1[c=a]·r/p / Σ 1[c=a]/p``.
- The difference is bootstrapped (traces resampled with replacement, paired, seeded); the
  candidate is promoted when the ``1 − confidence`` quantile of the difference is above 0.

With deterministic logging (every propensity 1.0: ``first``, ``cheapest``, ``router``) only
the traces where the candidate agrees with the served choice are usable, and on those the
two policies choose the same: no difference can be shown, so nothing is promoted. Log with
chances (``weighted`` selection, or a bandit that records its propensities) to compare.

The switch: ``--live`` is a symbolic link the config's ``selection.router`` names; it is
replaced atomically by one pointing at the candidate, and a reload (SIGHUP or ``POST
/v1/crossroads/admin/reload``) serves it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossroads.eval.export import reward_of
from crossroads.exceptions import CrossroadsError
from crossroads.types import Feedback


@dataclass
class Logged:
    """One usable trace: the logged choice, its propensity, the reward, the candidate's."""

    trace_id: str
    served: str
    propensity: float
    reward: float
    candidate: str


@dataclass
class Verdict:
    """What :func:`compare` found."""

    promote: bool
    confidence: float
    traces: int  # usable traces
    matched: int  # of them, where the candidate chose as the live config did
    live_value: float | None
    candidate_value: float | None  # SNIPS
    candidate_ips: float | None
    difference: float | None
    lower: float | None  # the (1 - confidence) quantile of the bootstrapped difference
    upper: float | None
    deterministic: bool
    skipped: dict[str, int] = field(default_factory=dict)
    reason: str = ""

    def lines(self) -> list[str]:
        """The verdict for people, one fact a line."""
        out = [
            f"usable traces: {self.traces} (left out: "
            + ", ".join(f"{k} {v}" for k, v in self.skipped.items() if v)
            + ")"
            if any(self.skipped.values())
            else f"usable traces: {self.traces}",
            f"candidate agrees with the logged choice on {self.matched} of them",
        ]
        if self.deterministic:
            out.append(
                "logging was deterministic (every propensity 1.0): only the agreement subset "
                "is usable, and there both choose the same, so no difference can be shown"
            )
        if self.live_value is not None:
            out.append(f"live reward (on-policy mean): {self.live_value:.4f}")
        if self.candidate_value is not None:
            out.append(
                f"candidate reward (SNIPS): {self.candidate_value:.4f} (IPS {self.candidate_ips:.4f})"
            )
        if self.difference is not None and self.lower is not None and self.upper is not None:
            out.append(
                f"difference: {self.difference:+.4f}, {self.confidence:.0%} one-sided bound "
                f"{self.lower:+.4f} (two-sided interval [{self.lower:+.4f}, {self.upper:+.4f}])"
            )
        out.append(("PROMOTE: " if self.promote else "keep the live router: ") + self.reason)
        return out


def logged_choices(
    labeled: list[tuple[dict[str, Any], list[Feedback]]],
    candidate: str | Path,
    *,
    decision: str | None = None,
    source: str | None = None,
    model_map: dict[str, str] | None = None,
) -> tuple[list[Logged], dict[str, int]]:
    """The usable traces for comparing ``candidate`` with the live config, and how many
    were left out, by reason."""
    target = Path(candidate).resolve()
    skipped = {
        "other_decision": 0,
        "failed": 0,
        "no_reward": 0,
        "fallback": 0,
        "no_propensity": 0,
        "no_candidate_choice": 0,
    }
    rows: list[Logged] = []
    service: Any = None
    for trace, feedback in labeled:
        route = trace.get("route") or {}
        if decision is not None and route.get("decision") != decision:
            skipped["other_decision"] += 1
            continue
        if (trace.get("status") or 200) >= 400 or not route:
            skipped["failed"] += 1
            continue
        reward = reward_of(feedback, source)
        if reward is None:
            skipped["no_reward"] += 1
            continue
        chosen = route.get("model")
        if (
            chosen is None or trace.get("model") != chosen
        ):  # the answer came from a fallback, not the choice
            skipped["fallback"] += 1
            continue
        propensity = route.get("propensity")
        if not isinstance(propensity, int | float) or propensity <= 0:
            skipped["no_propensity"] += 1
            continue
        shadow = route.get("shadow") or {}
        would = None
        if (
            shadow.get("model")
            and not shadow.get("error")
            and Path(shadow.get("artifact", "")).resolve() == target
        ):
            would = shadow["model"]
        if would is None and trace.get("prompt"):
            if service is None:
                from crossroads.routers.serving import RouterService

                service = RouterService(candidate, model_map=model_map).load()
            names = [c["model"] for c in route.get("candidates") or [] if c.get("eligible", True)]
            try:
                (scored,) = service.score([trace["prompt"]], names)
                would = scored.model
            except CrossroadsError:
                would = None
        if would is None:
            skipped["no_candidate_choice"] += 1
            continue
        rows.append(Logged(trace["trace_id"], chosen, float(propensity), reward, would))
    return rows, skipped


def compare(
    rows: list[Logged],
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    min_matched: int = 30,
    skipped: dict[str, int] | None = None,
) -> Verdict:
    """Whether the candidate's estimated reward beats the live one with ``confidence``."""
    import numpy as np

    if not 0.5 < confidence < 1:
        raise ValueError(f"confidence must be in (0.5, 1); got {confidence}")
    skipped = skipped or {}
    n = len(rows)
    reward = np.array([r.reward for r in rows], dtype=np.float64)
    p = np.array([r.propensity for r in rows], dtype=np.float64)
    agree = np.array([r.candidate == r.served for r in rows], dtype=bool)
    matched = int(agree.sum())
    deterministic = bool(n) and bool(np.all(p >= 1.0))
    verdict = Verdict(
        False, confidence, n, matched, None, None, None, None, None, None, deterministic, skipped
    )
    if n == 0:
        verdict.reason = (
            "no usable trace: serve the candidate as selection.shadow and send feedback"
        )
        return verdict
    verdict.live_value = float(reward.mean())
    if deterministic:
        subset = reward[agree]
        verdict.candidate_value = float(subset.mean()) if matched else None
        verdict.candidate_ips = verdict.candidate_value
        verdict.reason = (
            "deterministic logging cannot show the candidate better; log with propensities "
            "(weighted selection or a bandit) to compare"
        )
        return verdict
    weight = agree / p
    verdict.candidate_ips = float((weight * reward).sum() / n)
    if matched == 0:
        verdict.reason = "the candidate never agrees with a logged choice: nothing to estimate"
        return verdict
    verdict.candidate_value = float((weight * reward).sum() / weight.sum())
    verdict.difference = verdict.candidate_value - verdict.live_value
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_boot, n))
    w, r = weight[draws], reward[draws]
    total = w.sum(axis=1)
    usable = total > 0  # a resample without an agreeing trace says nothing
    cand = (w * r).sum(axis=1)[usable] / total[usable]
    diffs = cand - r[usable].mean(axis=1)
    verdict.lower = float(np.quantile(diffs, 1 - confidence))
    verdict.upper = float(np.quantile(diffs, confidence))
    if matched < min_matched:
        verdict.reason = f"only {matched} agreeing traces; need at least {min_matched}"
    elif verdict.lower > 0:
        verdict.promote = True
        verdict.reason = (
            f"the candidate beats the live router with {confidence:.0%} confidence "
            f"(difference {verdict.difference:+.4f}, bound {verdict.lower:+.4f})"
        )
    else:
        verdict.reason = (
            f"the candidate is not better with {confidence:.0%} confidence "
            f"(difference {verdict.difference:+.4f}, bound {verdict.lower:+.4f} ≤ 0)"
        )
    return verdict


def switch_pointer(live: str | Path, candidate: str | Path) -> Path:
    """Point the symbolic link ``live`` at ``candidate``, atomically (a new link renamed
    over the old one); returns what it pointed at before."""
    live, candidate = Path(live), Path(candidate)
    if not live.is_symlink():
        raise CrossroadsError(
            f"{live} is not a symbolic link: promote switches the link the config names. "
            f"Make it one (mv {live} {live.stem}-v1{live.suffix} && ln -s "
            f"{live.stem}-v1{live.suffix} {live}) and point selection.router at {live}."
        )
    if not candidate.is_file():
        raise CrossroadsError(f"the candidate artifact {candidate} does not exist")
    before = live.resolve()
    target = os.path.relpath(candidate.resolve(), live.parent.resolve())
    temporary = live.with_name(f".{live.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    os.symlink(target, temporary)
    os.replace(temporary, live)
    return before


def promote(
    labeled: list[tuple[dict[str, Any], list[Feedback]]],
    live: str | Path,
    candidate: str | Path,
    *,
    confidence: float = 0.95,
    decision: str | None = None,
    source: str | None = None,
    min_matched: int = 30,
    dry_run: bool = False,
    seed: int = 0,
) -> Verdict:
    """Compare ``candidate`` with the live config on ``labeled`` traces and, if it wins,
    switch the ``live`` link to it (unless ``dry_run``)."""
    if Path(candidate).resolve() == Path(live).resolve():
        raise CrossroadsError(f"{candidate} is already what {live} points at")
    rows, skipped = logged_choices(labeled, candidate, decision=decision, source=source)
    verdict = compare(
        rows, confidence=confidence, min_matched=min_matched, skipped=skipped, seed=seed
    )
    if verdict.promote and not dry_run:
        before = switch_pointer(live, candidate)
        verdict.reason += f"; {live} now points at {Path(candidate).resolve()} (was {before})"
    elif verdict.promote:
        verdict.reason += " (dry run: nothing switched)"
    return verdict
