"""Reports of an evaluation: a markdown table, JSON, PNG cost-quality plots, an HTML page."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from crossroads.eval.metrics import upper_hull
from crossroads.eval.runner import EvalResult

COLUMNS = [
    ("aiq", "AIQ"),
    ("max_quality", "max quality"),
    ("quality_at_best_cost", "quality @ best-single cost"),
    ("cost_share_at_best_quality", "cost share @ best-single quality"),
    ("apgr", "APGR"),
    ("cpt50", "CPT(50%)"),
    ("cpt80", "CPT(80%)"),
    ("cpt95", "CPT(95%)"),
    ("subst_auc", "substitution AUC"),
]


def _fmt(value: float | None, lo: float | None = None, hi: float | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "never"
    text = f"{value:.3f}"
    if lo is not None and hi is not None and not (math.isnan(lo) or math.isnan(hi)):
        hi_text = "inf" if math.isinf(hi) else f"{hi:.3f}"
        text += f" [{lo:.3f}, {hi_text}]"
    return text


def _params(params: dict[str, Any]) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")"


def to_dict(result: EvalResult) -> dict[str, Any]:
    """A JSON-ready view of ``result`` (curves included)."""
    return {
        "dataset": result.dataset,
        "models": result.models,
        "split_sizes": result.split_sizes,
        "split_rule": result.split_rule,
        "numbers_from": "test split",
        "features": result.features,
        "cost_unit": result.cost_unit,
        "cost_note": result.cost_note,
        "best_single": result.best_single,
        "strong_weak": result.strong_weak,
        "cost_ratio_max_min": result.cost_ratio,
        "seconds": result.seconds,
        "seed": result.seed,
        "excluded_models": result.excluded_models,
        "tuned_on": "validation split" if result.tuned else None,
        "selected_on_validation": result.selected,
        "selected_on": result.selected_on,
        "single_points": result.single_points,
        "routers": [
            {
                "name": r.name,
                "kind": r.kind,
                "metrics": r.metrics,
                "ci95": {k: list(v) for k, v in r.intervals.items()},
                "fit_seconds": r.fit_seconds,
                "predict_ms_per_prompt": r.predict_ms_per_prompt,
                "params": r.params,
                "val_aiq": r.val_aiq,
                "points": r.points.tolist(),
            }
            for r in result.results
        ],
    }


def markdown_table(result: EvalResult) -> str:
    """The metrics table (values with 95% bootstrap intervals), one row per router."""
    cols = [c for c in COLUMNS if any(c[0] in r.metrics for r in result.results)]
    head = ["router", "kind", "val AIQ", *[label for _, label in cols], "fit s"]
    head.append("predict ms/prompt")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ordered = sorted(result.results, key=lambda r: (r.kind == "single", -r.metrics["aiq"]))
    for r in ordered:
        cells = [r.name, r.kind]
        cells.append(_fmt(r.val_aiq) + (" (selected)" if r.name == result.selected else ""))
        for key, _ in cols:
            lo, hi = r.intervals.get(key, (None, None))
            cells.append(_fmt(r.metrics.get(key), lo, hi))
        cells.append("–" if r.fit_seconds is None else f"{r.fit_seconds:.2f}")
        cells.append("–" if r.predict_ms_per_prompt is None else f"{r.predict_ms_per_prompt:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(result: EvalResult) -> str:
    """The whole markdown report of one dataset."""
    sizes = ", ".join(f"{k} {v}" for k, v in result.split_sizes.items())
    return "\n".join(
        [
            f"# {result.dataset}: router evaluation",
            "",
            f"- All numbers are on the **test split** ({sizes}; {result.split_rule}; "
            f"seed {result.seed}); 95% bootstrap intervals in brackets.",
            f"- Prompt features: {result.features}.",
            f"- Cost: {result.cost_note}; unit `{result.cost_unit}`; most/least expensive "
            f"model cost ratio {result.cost_ratio:.1f}x.",
            f"- Best single model on test: `{result.best_single}`."
            + (
                f" Strong/weak (by train quality): `{result.strong_weak[0]}` / "
                f"`{result.strong_weak[1]}`."
                if result.strong_weak
                else ""
            ),
            (
                f"- Left out (flagged variant_or_degenerate in models.json): "
                f"{', '.join(result.excluded_models)}."
                if result.excluded_models
                else "- All models of the dataset are included."
            ),
            "- `random` is routing each prompt at random among the models, whose expected "
            "curve is the hull of the single models; `mean` predicts each model's mean "
            "training quality (prompt-free); `oracle` knows the test outcomes.",
            (
                f"- Hyper-parameters chosen by grid search on the **{result.selected_on}** "
                "(fit on the rest, score AIQ on held-out rows; never test): "
                + "; ".join(f"{r.name} {_params(r.params)}" for r in result.results if r.params)
                + "."
                if result.tuned
                else "- Hyper-parameters: library defaults."
            ),
            f"- `val AIQ`: AIQ on the {result.selected_on}; `(selected)`: the learned router "
            f"with the best one (`{result.selected}`), a choice that never looks at test. `substitution AUC`: "
            "how well the router ranks test prompts where a model costing <= 50% of the "
            "best one (by train) is as good as it (see metrics.md).",
            "",
            markdown_table(result),
            "",
            f"![cost-quality curves]({result.dataset}.png)",
            "",
        ]
    )


def plot(result: EvalResult, path: Path) -> Path:
    """PNG of every router's hull with its points, the single models and the oracle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for r in result.results:
        if r.kind == "single":
            continue
        hull = upper_hull(r.points)
        style = {"oracle": ":", "random": "--"}.get(r.name, "-")
        (line,) = ax.plot(
            hull[:, 0], hull[:, 1], style, label=f"{r.name} (AIQ {r.metrics['aiq']:.3f})"
        )
        if r.name not in {"oracle", "random"}:
            ax.scatter(r.points[:, 0], r.points[:, 1], s=6, color=line.get_color(), alpha=0.4)
    for model, (c, q) in result.single_points.items():
        ax.scatter([c], [q], marker="*", s=90, color="black", zorder=5)
        if len(result.single_points) <= 12:
            ax.annotate(model, (c, q), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"mean cost per prompt ({result.cost_unit})")
    ax.set_ylabel("mean quality")
    if result.cost_ratio > 20:
        ax.set_xscale("log")
    ax.set_title(f"{result.dataset}: cost-quality on the test split")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary_rows(result: EvalResult) -> dict[str, Any]:
    """Targets of one dataset: the router selected on validation (and, for reference, the
    best learned router on test) vs the best non-oracle baseline and the oracle."""
    learned = [r for r in result.results if r.kind == "learned"]
    baselines = [r for r in result.results if r.kind != "learned" and r.name != "oracle"]
    best = max(learned, key=lambda r: r.metrics["aiq"]) if learned else None
    chosen = next((r for r in learned if r.name == result.selected), best)
    base = max(baselines, key=lambda r: r.metrics["aiq"])
    oracle = next(r for r in result.results if r.name == "oracle")
    cheapest_share = (
        min(r.metrics["cost_share_at_best_quality"] for r in learned) if learned else math.nan
    )
    aucs = [r.metrics["subst_auc"] for r in learned if "subst_auc" in r.metrics]
    return {
        "dataset": result.dataset,
        "selected_router": chosen.name if chosen else None,
        "selected_aiq": chosen.metrics["aiq"] if chosen else math.nan,
        "selected_aiq_ci": chosen.intervals.get("aiq") if chosen else None,
        "selected_cost_share": (
            chosen.metrics["cost_share_at_best_quality"] if chosen else math.nan
        ),
        "best_router": best.name if best else None,
        "best_router_aiq": best.metrics["aiq"] if best else math.nan,
        "best_router_aiq_ci": best.intervals.get("aiq") if best else None,
        "best_baseline": base.name,
        "best_baseline_aiq": base.metrics["aiq"],
        "oracle_aiq": oracle.metrics["aiq"],
        "oracle_cost_share": oracle.metrics["cost_share_at_best_quality"],
        "aiq_above_baselines": bool(chosen and chosen.metrics["aiq"] > base.metrics["aiq"]),
        "best_cost_share_at_best_quality": cheapest_share,
        "best_substitution_auc": max(aucs) if aucs else math.nan,
        "cost_ratio": result.cost_ratio,
    }


def summary_markdown(results: list[EvalResult]) -> str:
    """One row per dataset: does the router selected on validation meet the targets?"""
    head = (
        "| dataset | selected on val (test AIQ, 95% CI) | best on test (AIQ) "
        "| best non-oracle baseline (AIQ) | oracle AIQ | selected above baselines "
        "| cost share @ best-single quality: selected / least of all / oracle "
        "| best substitution AUC | cost ratio |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        row = summary_rows(result)
        lo, hi = row["selected_aiq_ci"] or (math.nan, math.nan)
        lines.append(
            f"| {row['dataset']} | {row['selected_router']} {row['selected_aiq']:.3f} "
            f"[{lo:.3f}, {hi:.3f}] | {row['best_router']} {row['best_router_aiq']:.3f} "
            f"| {row['best_baseline']} {row['best_baseline_aiq']:.3f} "
            f"| {row['oracle_aiq']:.3f} | {'yes' if row['aiq_above_baselines'] else 'no'} "
            f"| {_fmt(row['selected_cost_share'])} / "
            f"{_fmt(row['best_cost_share_at_best_quality'])} / "
            f"{_fmt(row['oracle_cost_share'])} | {_fmt(row['best_substitution_auc'])} "
            f"| {row['cost_ratio']:.1f}x |"
        )
    return "\n".join(lines)


def write_report(results: list[EvalResult], out: str | Path) -> Path:
    """Write ``<name>.md``, ``<name>.json``, ``<name>.png`` per dataset, ``summary.md`` and
    ``index.html``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(summary_markdown(results) + "\n")
    sections = []
    for result in results:
        (out / f"{result.dataset}.md").write_text(markdown(result))
        (out / f"{result.dataset}.json").write_text(
            json.dumps(to_dict(result), indent=1, default=float)
        )
        plot(result, out / f"{result.dataset}.png")
        sections.append(_html_section(result))
    intro = (
        "All numbers are on each dataset's test split, with 95% bootstrap intervals. "
        "<a href='summary.md'>summary</a>"
    )
    (out / "index.html").write_text(html_page("Router evaluation", intro, sections))
    return out / "index.html"


def html_page(title: str, intro_html: str, sections: list[str]) -> str:
    """A self-contained report page: the dashboard's styles, a title, an intro, sections."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>crossroads: {html.escape(title)}</title><style>{_shared_css()}</style></head>"
        "<body><header class='bar'><div class='brand'>cross<span>roads</span></div>"
        f"<div class='status'>{html.escape(title.lower())}</div></header><main class='report'>"
        f"<h1>{html.escape(title)}</h1><p class='muted'>{intro_html}</p>"
        + "".join(sections)
        + "</main></body></html>"
    )


def html_table(markdown_lines: str) -> str:
    """A markdown table as an HTML table (cells escaped)."""
    rows: list[str] = []
    for line in markdown_lines.splitlines():
        if line.startswith("|---"):
            continue
        cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
        tag = "th" if not rows else "td"
        rows.append("<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>")
    return f"<div class='table-wrap'><table>{''.join(rows)}</table></div>"


def _html_section(result: EvalResult) -> str:
    name = html.escape(result.dataset)
    return (
        f"<h2>{name}</h2><p class='muted'>{html.escape(result.cost_note)}; features: "
        f"{html.escape(result.features)}; split: {html.escape(result.split_rule)}. "
        f"<a href='{name}.md'>markdown</a> · <a href='{name}.json'>JSON</a></p>"
        f"{html_table(markdown_table(result))}"
        f"<p><img src='{name}.png' width='800' alt='{name}: cost-quality curves'></p>"
    )


def _shared_css() -> str:
    """The dashboard's stylesheet, inlined so that the report stays one self-contained page."""
    from importlib import resources

    return resources.files("crossroads.dashboard").joinpath("static/crossroads.css").read_text()
