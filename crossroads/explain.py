"""Human-readable views of routes and traces, for the CLI."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from crossroads.config import Config
from crossroads.decisions import CompiledEntrypoint, explain
from crossroads.pipeline import Pipeline
from crossroads.prompts import routing_request
from crossroads.types import Route


async def explain_route(cfg: Config, body: dict[str, Any], rules: bool = False) -> dict[str, Any]:
    """Route ``body`` under ``cfg`` without calling any model; the route as a dict, exactly
    as a trace records it (signals name the rules that matched, not the matched text).
    With ``rules``, also ``rules``: every decision of the entrypoint in the order tried, with
    ``status`` (``matched``, ``no``, ``not tried``) and ``why`` (the rule with each part's
    value), and ``not_computed``: the signals the entrypoint reads that this request skipped."""
    from crossroads.formats import openai_chat

    request = openai_chat.parse_request(body)
    pipeline = Pipeline(cfg).prepare()
    route = await pipeline.route(routing_request(request), request.model)
    out = dataclasses.asdict(route)
    if rules:
        entry = pipeline.entrypoints_.get(request.model)
        out["rules"] = _rules_tried(entry, route) if entry is not None else []
        out["not_computed"] = (
            sorted(entry.signals - route.signals.keys()) if entry is not None else []
        )
    return out


def _rules_tried(entry: CompiledEntrypoint, route: Route) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    status = "no"
    for decision in (*entry.decisions, entry.default):
        if decision.name == route.decision and status == "no":
            status = "matched"
        why = explain(decision.rule, route.signals) if decision.rule is not None else "default"
        rows.append(
            {
                "decision": decision.name,
                "priority": None if decision.rule is None else decision.priority,
                "status": status,
                "why": why,
            }
        )
        if status == "matched":
            status = "not tried"
    return rows


def render_route(route: dict[str, Any]) -> None:
    """Print a route: signals, rules tried, candidates with costs, the choice (with
    ``--explain``: every rule, why it matched or not, and the signals not computed)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    explained = "rules" in route
    if route["signals"] or route.get("not_computed"):
        table = Table(title="signals", title_justify="left")
        for col in ("signal", "matched", "value", "detail", "ms", "error"):
            table.add_column(col)
        for s in route["signals"].values():
            table.add_row(
                s["name"],
                "yes" if s["matched"] else "no",
                escape(_short(s["value"])),
                escape(_short(s["detail"])),
                f"{s['elapsed_ms']:.3f}",
                escape(s["error"] or ""),
            )
        for name in route.get("not_computed", []):
            table.add_row(
                name, "-", "-", "not computed: cheaper signals settled the decision", "-", ""
            )
        console.print(table)
    if explained and not route["rules"]:
        console.print("no rules tried: the request names a configured model")
    elif explained:
        table = Table(title="rules (highest priority first)", title_justify="left")
        for col in ("decision", "priority", "result", "why"):
            table.add_column(col)
        for r in route["rules"]:
            table.add_row(
                r["decision"],
                "" if r["priority"] is None else str(r["priority"]),
                r["status"],
                escape(r["why"]),
            )
        console.print(table)
    elif route["rule_path"]:
        console.print("[bold]rules tried[/bold] (highest priority first):")
        for step in route["rule_path"]:
            console.print(f"  {escape(step)}")
    scored = explained and any(c["score"] is not None for c in route["candidates"])
    table = Table(title="candidates", title_justify="left")
    for col in (
        "model",
        "eligible",
        "estimated cost (USD)",
        *(["score"] if scored else []),
        "note",
    ):
        table.add_column(col)
    for c in route["candidates"]:
        chosen = c["model"] == route["model"]
        table.add_row(
            f"[bold green]{c['model']}[/bold green]" if chosen else c["model"],
            "yes" if c["eligible"] else "no",
            f"{c['estimated_cost']:.6f}",
            *([f"{c['score']:.4f}" if c["score"] is not None else ""] if scored else []),
            "chosen" if chosen else escape(c["reason"] or ""),
        )
    console.print(table)
    console.print(
        f"decision [bold]{route['decision']}[/bold] ({route['selection']}) → "
        f"[bold green]{route['model']}[/bold green], estimated ${route['estimated_cost']:.6f} "
        f"for ~{route['prompt_tokens_estimate']} prompt tokens; routed in {route['routing_ms']:.3f} ms"
    )


def render_traces(rows: list[dict[str, Any]]) -> None:
    """Print trace summary rows as a table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} most recent requests", title_justify="left")
    for col in (
        "time",
        "trace",
        "format",
        "asked",
        "model",
        "decision",
        "tokens in/out",
        "cost $",
        "ttft ms",
        "total ms",
        "status",
    ):
        table.add_column(col)
    for r in rows:
        tokens = (
            f"{r['prompt_tokens']}/{r['completion_tokens']}"
            if r["prompt_tokens"] is not None
            else "-"
        )
        table.add_row(
            time.strftime("%H:%M:%S", time.localtime(r["created_at"])),
            r["trace_id"][:12],
            r.get("format") or "-",
            r["requested_model"] or "-",
            r["model"] or "-",
            r["decision"] or "-",
            tokens,
            f"{r['cost']:.6f}" if r["cost"] is not None else "-",
            f"{r['ttft_ms']:.1f}" if r["ttft_ms"] is not None else "-",
            f"{r['latency_ms']:.1f}" if r["latency_ms"] is not None else "-",
            str(r["status"]) + (f" {r['error'][:40]}" if r["error"] else ""),
        )
    Console().print(table)


def _short(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def render_spend(rows: list[dict[str, Any]], dims: list[str]) -> None:
    """Print spend summary rows, grouped by ``dims``, as a table with a total."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="spend", title_justify="left")
    for col in (*dims, "requests", "tokens in/out", "cost $"):
        table.add_column(col, justify="left" if col in dims else "right")
    for r in rows:
        table.add_row(
            *(str(r[d]) if r[d] is not None else "-" for d in dims),
            str(r["requests"]),
            f"{r['prompt_tokens']}/{r['completion_tokens']}",
            f"{r['cost']:.6f}",
        )
    total = sum(r["cost"] for r in rows)
    Console().print(table)
    Console().print(f"total: {sum(r['requests'] for r in rows)} requests, ${total:.6f}")
