"""Human-readable views of routes and traces, for the CLI."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from crossroads.config import Config
from crossroads.pipeline import Pipeline
from crossroads.prompts import routing_request


async def explain_route(cfg: Config, body: dict[str, Any]) -> dict[str, Any]:
    """Route ``body`` under ``cfg`` without calling any model; the route as a dict, exactly
    as a trace records it (signals name the rules that matched, not the matched text)."""
    from crossroads.formats import openai_chat

    request = openai_chat.parse_request(body)
    pipeline = Pipeline(cfg).prepare()
    route = await pipeline.route(routing_request(request), request.model)
    return dataclasses.asdict(route)


def render_route(route: dict[str, Any]) -> None:
    """Print a route: signals, rules tried, candidates with costs, the choice."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if route["signals"]:
        table = Table(title="signals", title_justify="left")
        for col in ("signal", "matched", "value", "detail", "ms", "error"):
            table.add_column(col)
        for s in route["signals"].values():
            table.add_row(
                s["name"],
                "yes" if s["matched"] else "no",
                _short(s["value"]),
                _short(s["detail"]),
                f"{s['elapsed_ms']:.3f}",
                s["error"] or "",
            )
        console.print(table)
    if route["rule_path"]:
        console.print("[bold]rules tried[/bold] (highest priority first):")
        for step in route["rule_path"]:
            console.print(f"  {step}")
    table = Table(title="candidates", title_justify="left")
    for col in ("model", "eligible", "estimated cost (USD)", "note"):
        table.add_column(col)
    for c in route["candidates"]:
        chosen = c["model"] == route["model"]
        table.add_row(
            f"[bold green]{c['model']}[/bold green]" if chosen else c["model"],
            "yes" if c["eligible"] else "no",
            f"{c['estimated_cost']:.6f}",
            "chosen" if chosen else (c["reason"] or ""),
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
