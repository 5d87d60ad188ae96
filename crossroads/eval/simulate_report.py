"""Reports of ``crossroads simulate``: a markdown table, a JSON dump, curves (PNG) and one HTML
page per run, styled like the evaluation report (:func:`crossroads.eval.report.html_page`)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from crossroads.eval.report import html_page, html_table
from crossroads.eval.simulate import SimulationResult, curve, running_mean


def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown_table(result: SimulationResult) -> str:
    """One row per policy: final quality, cost, reward and regrets."""
    head = (
        "| policy | kind | quality | cost | reward | regret vs oracle | quality after prefix "
        "| cost after prefix | regret vs oracle after prefix | regret vs best offline after "
        "prefix | explored | mean propensity |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in result.policies:
        s = result.summary(p)
        lines.append(
            f"| {p.name} | {p.kind} | {_f(s['quality'])} | {s['cost']:.3g} | {_f(s['reward'], 4)} "
            f"| {s['regret_oracle']:.1f} | {_f(s['quality_after'])} | {s['cost_after']:.3g} "
            f"| {s['regret_oracle_after']:.1f} "
            f"| {_f(s.get('regret_offline_after'), 1)} "
            f"| {_f(p.detail.get('explored'))} | {_f(p.detail.get('mean_propensity'))} |"
        )
    return "\n".join(lines)


def describe(result: SimulationResult) -> str:
    """The settings of a run, in one sentence."""
    s = result.settings
    best = result.best_offline()
    return (
        f"{s['requests']} requests in a seeded order (seed {s['seed']}), feedback "
        f"{s['delay']} requests late, noise σ={s['noise']}, {s['missing']:.0%} never sent; "
        f"offline routers ({', '.join(s['routers']) or 'none'}) fitted on the first "
        f"{result.prefix} requests (full information); best of them after the prefix: "
        f"{best.name if best else '–'}; λ = {result.lam:.4g} per {result.cost_unit}; "
        f"max_explore {s['max_explore']}; statistics synchronised every {s['sync_every']} "
        f"requests; features: {result.features}."
        + (
            f" Drift: from request {s['requests'] // 2} {s['drifted_model']} loses "
            f"{s['drift']:.0%} of its quality; the selectors forget (buckets of 50 requests, "
            "discount 0.7, the last 12)."
            if s.get("drift")
            else ""
        )
    )


def markdown(result: SimulationResult) -> str:
    """The report of one run."""
    return "\n".join(
        [
            f"# {result.dataset}: online selection replay",
            "",
            describe(result),
            "",
            markdown_table(result),
            "",
            f"![regret and running means]({result.dataset}.png)",
            "",
        ]
    )


def plot(result: SimulationResult, path: Path) -> Path:
    """Cumulative regret vs the oracle, running mean quality and running mean cost."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for p in result.policies:
        if p.name == "oracle":
            continue
        style = "-" if p.kind == "online" else "--" if p.kind == "offline" else ":"
        steps, regret = curve(result.oracle - p.reward)
        axes[0].plot(steps, regret, style, label=p.name)
        steps, quality = running_mean(p.quality)
        axes[1].plot(steps, quality, style, label=p.name)
        steps, cost = running_mean(p.cost)
        axes[2].plot(steps, cost, style, label=p.name)
    for ax, title in zip(
        axes,
        (
            "cumulative regret vs oracle",
            "mean quality so far",
            f"mean cost so far ({result.cost_unit})",
        ),
        strict=True,
    ):
        ax.axvline(result.prefix, color="grey", lw=0.8)
        ax.set_title(title)
        ax.set_xlabel("requests")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{result.dataset}: replay (grey line: end of the offline routers' prefix)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def to_dict(result: SimulationResult) -> dict[str, Any]:
    """The numbers of a run, for JSON."""
    return {
        "dataset": result.dataset,
        "models": result.models,
        "lambda": result.lam,
        "prefix": result.prefix,
        "settings": result.settings,
        "features": result.features,
        "seconds": result.seconds,
        "policies": {
            p.name: {"kind": p.kind, **result.summary(p), **p.detail} for p in result.policies
        },
    }


def write_report(results: list[SimulationResult], out: str | Path) -> Path:
    """``<dataset>.md``, ``.json``, ``.png`` per run and ``index.html`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections = []
    for r in results:
        (out / f"{r.dataset}.md").write_text(markdown(r))
        (out / f"{r.dataset}.json").write_text(json.dumps(to_dict(r), indent=1, default=float))
        plot(r, out / f"{r.dataset}.png")
        name = html.escape(r.dataset)
        sections.append(
            f"<h2>{name}</h2><p class='muted'>{html.escape(describe(r))} "
            f"<a href='{name}.md'>markdown</a> · <a href='{name}.json'>JSON</a></p>"
            f"{html_table(markdown_table(r))}"
            f"<p><img src='{name}.png' width='1100' alt='{name}: regret and running means'></p>"
        )
    intro = (
        "Each dataset replayed as a stream through the online selectors; regret is the summed "
        "shortfall in reward (quality − λ·cost) against the oracle and against the best offline "
        "router fitted on the stream's prefix."
    )
    page = out / "index.html"
    page.write_text(html_page("Online selection replay", intro, sections))
    return page
