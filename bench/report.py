"""Markdown tables of a ``python -m bench`` run: medians over repeats, spread, ratios.

Added latency is computed per repeat (target minus ``direct`` at the same load in the
same repeat), then summarised, so slow drift of the machine's load cancels out.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

Summary = dict[str, Any]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _spread(values: list[float], fmt: str = "{:.2f}") -> str:
    if not values:
        return "–"
    med = fmt.format(_median(values))
    if len(values) == 1:
        return med
    return f"{med} [{fmt.format(min(values))}–{fmt.format(max(values))}]"


def _collect(
    data: dict[str, Any], target: str, load: str, pick: Callable[[Summary], float]
) -> list[float]:
    values = []
    for run in data["runs"]:
        summary = run.get(target, {}).get("loads", {}).get(load)
        if summary:
            values.append(pick(summary))
    return values


def _added(data: dict[str, Any], target: str, load: str, metric: str, q: str) -> list[float]:
    values = []
    for run in data["runs"]:
        mine = run.get(target, {}).get("loads", {}).get(load)
        base = run.get("direct", {}).get("loads", {}).get(load)
        if mine and base and mine["ok"] and base["ok"]:
            values.append(mine[metric][q] - base[metric][q])
    return values


def _label(target: str) -> str:
    return target.replace("crossroads:", "crossroads ")


def throughput_table(data: dict[str, Any]) -> list[str]:
    """Closed-loop max throughput, with ratios against direct and against LiteLLM."""
    lines = [
        "| load | target | req/s median [min–max] | × direct | × LiteLLM | errors | p50 ms | p99 ms "
        "| server CPU µs/req | ⇒ req/s per core | upstream CPU µs/req |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for load in (n for n in data["loads"] if n.startswith("closed")):
        direct = _median(_collect(data, "direct", load, lambda s: s["throughput"]))
        litellm = _median(_collect(data, "litellm", load, lambda s: s["throughput"]))
        for target in data["targets"]:
            rates = _collect(data, target, load, lambda s: s["throughput"])
            if not rates:
                continue
            med = _median(rates)
            errors = sum(_collect(data, target, load, lambda s: s["errors"]))
            p50 = _collect(data, target, load, lambda s: s["latency_ms"]["p50"])
            p99 = _collect(data, target, load, lambda s: s["latency_ms"]["p99"])
            vs_direct = f"{med / direct:.3f}" if direct and target != "direct" else "–"
            vs_litellm = f"{med / litellm:.1f}" if litellm and target != "litellm" else "–"
            cpu = _collect(data, target, load, lambda s: s.get("server_cpu_us_per_req", 0))
            up = _collect(data, target, load, lambda s: s.get("upstream_cpu_us_per_req", 0))
            per_core = f"{1e6 / _median(cpu):.0f}" if cpu and _median(cpu) > 0 else "–"
            lines.append(
                f"| {load} | {_label(target)} | {_spread(rates, '{:.0f}')} | {vs_direct} | {vs_litellm} "
                f"| {errors:.0f} | {_median(p50):.2f} | {_median(p99):.2f} | {_spread(cpu, '{:.0f}')} "
                f"| {per_core} | {_spread(up, '{:.0f}')} |"
            )
    return lines


def latency_table(data: dict[str, Any]) -> list[str]:
    """Open-loop latency at fixed rates, and what each target adds over direct."""
    lines = [
        "| load | target | achieved req/s | p50 ms | p90 ms | p99 ms | added p50 ms | added p90 ms | added p99 ms | errors | CPU µs/req |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for load in (n for n in data["loads"] if n.startswith("open")):
        for target in data["targets"]:
            achieved = _collect(data, target, load, lambda s: s["throughput"])
            if not achieved:
                continue
            cells = [
                _spread(_collect(data, target, load, lambda s, q=q: s["latency_ms"][q]))
                for q in ("p50", "p90", "p99")
            ]
            if target == "direct":
                added = ["–", "–", "–"]
            else:
                added = [
                    _spread(_added(data, target, load, "latency_ms", q))
                    for q in ("p50", "p90", "p99")
                ]
            errors = sum(_collect(data, target, load, lambda s: s["errors"]))
            rate = _collect(data, target, load, lambda s: s["rate_target"] or 0)
            saturated = _median(achieved) < 0.9 * _median(rate) or errors > 0.01 * sum(
                _collect(data, target, load, lambda s: s["requests"])
            )
            note = " (saturated)" if saturated else ""
            cpu = _collect(data, target, load, lambda s: s.get("server_cpu_us_per_req", 0))
            lines.append(
                f"| {load} | {_label(target)} | {_median(achieved):.0f}{note} | {' | '.join(cells)} "
                f"| {' | '.join(added)} | {errors:.0f} | {_spread(cpu, '{:.0f}')} |"
            )
    return lines


def stream_table(data: dict[str, Any]) -> list[str]:
    """Time to first byte of streams at fixed rates, and what each target adds."""
    lines = [
        "| load | target | TTFB p50 ms | TTFB p99 ms | added TTFB p50 | added TTFB p99 | total p50 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for load in (n for n in data["loads"] if "stream" in n):
        for target in data["targets"]:
            ttfb50 = _collect(data, target, load, lambda s: s["ttfb_ms"]["p50"])
            if not ttfb50:
                continue
            ttfb99 = _collect(data, target, load, lambda s: s["ttfb_ms"]["p99"])
            total = _collect(data, target, load, lambda s: s["latency_ms"]["p50"])
            if target == "direct":
                added = ["–", "–"]
            else:
                added = [_spread(_added(data, target, load, "ttfb_ms", q)) for q in ("p50", "p99")]
            lines.append(
                f"| {load} | {_label(target)} | {_spread(ttfb50)} | {_spread(ttfb99)} | {added[0]} "
                f"| {added[1]} | {_median(total):.2f} |"
            )
    return lines


def memory_and_health(data: dict[str, Any]) -> list[str]:
    """RSS per target, failures, and the load generator's own CPU use."""
    lines = ["| target | RSS idle MB | RSS after load MB | failures |", "|---|---|---|---|"]
    for target in data["targets"]:
        idle = [
            r[target]["rss_idle_mb"] for r in data["runs"] if "rss_idle_mb" in r.get(target, {})
        ]
        loaded = [
            r[target]["rss_loaded_mb"] for r in data["runs"] if "rss_loaded_mb" in r.get(target, {})
        ]
        failures = [r[target]["error"] for r in data["runs"] if "error" in r.get(target, {})]
        lines.append(
            f"| {_label(target)} | {_spread(idle, '{:.0f}')} | {_spread(loaded, '{:.0f}')} "
            f"| {'; '.join(f[:120] for f in failures) or 0} |"
        )
    cpu = [
        s["loadgen_cpu"]
        for run in data["runs"]
        for result in run.values()
        for s in result.get("loads", {}).values()
    ]
    if cpu:
        lines.append("")
        lines.append(
            f"Load generator CPU (fraction of one core): max {max(cpu):.2f}, median {_median(cpu):.2f}."
        )
    return lines


def render_report(data: dict[str, Any]) -> str:
    """The whole markdown report of one run."""
    info = data["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items())
    header = [
        f"Run {info['date']} on {info.get('cpu_model', '?')} ({info['cpus']} CPUs), "
        f"Python {info['python']}; {versions}.",
        f"Server under test on core(s) {info['cpu_sut']}; fake upstream and load generator on "
        f"core(s) {info['cpu_aux']}. Load average at start {info['loadavg_start'][0]:.2f}, "
        f"at end {info['loadavg_end'][0]:.2f}. Repeats: {len(data['runs'])}.",
        f"Command: `{' '.join(info['argv'])}`",
        f"Code: commit {info.get('git', {}).get('commit', '?')}; files differing from it: "
        f"{', '.join(info.get('git', {}).get('dirty', [])) or 'none'}.",
    ]
    parts = [
        *header,
        "",
        "### Max throughput (closed loop)",
        "",
        *throughput_table(data),
        "",
        "### Latency at fixed rates (open loop; added = target − direct, same repeat)",
        "",
        *latency_table(data),
        "",
        "### Streams: time to first byte",
        "",
        *stream_table(data),
        "",
        "### Memory, failures, load generator",
        "",
        *memory_and_health(data),
        "",
    ]
    return "\n".join(parts)
