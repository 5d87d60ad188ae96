"""Merge worker snapshots and render them in Prometheus' text format (or OpenMetrics).

Counters and histograms add up over every snapshot, those of workers that have exited
included, so totals never go back while the server runs. Gauges (in-flight calls, circuit
states, queue depth) are live values: only snapshots newer than ``stale_s`` count. The
rendering goes through prometheus-client's custom-collector API, imported at the first
scrape, so its text format and content negotiation are the library's.
"""

from __future__ import annotations

import time
from typing import Any

from crossroads.observe.metrics import FAMILIES

Merged = dict[str, dict[tuple[str, ...], Any]]


def merge(snapshots: list[dict[str, Any]], stale_s: float) -> Merged:
    """The sum of ``snapshots`` by family and labels (histograms bucket by bucket); gauges
    only from snapshots written within ``stale_s`` seconds. ``crossroads_workers`` counts those."""
    merged: Merged = {name: {} for name in FAMILIES}
    horizon = time.time() - stale_s
    fresh = 0
    for snap in snapshots:
        for name, rows in snap["counters"].items():
            _add(merged.get(name), rows)
        for name, rows in snap["histograms"].items():
            table = merged.get(name)
            if table is None:
                continue
            for labels, values in rows:
                key = tuple(labels)
                have = table.get(key)
                table[key] = (
                    list(values)
                    if have is None
                    else [a + b for a, b in zip(have, values, strict=True)]
                )
        if snap["written_at"] >= horizon:
            fresh += 1
            for name, rows in snap["gauges"].items():
                _add(merged.get(name), rows)
    merged["crossroads_workers"][()] = fresh
    return merged


def _add(table: dict[tuple[str, ...], Any] | None, rows: list[Any]) -> None:
    if table is None:  # a family a newer worker knows and this one does not
        return
    for labels, value in rows:
        key = tuple(labels)
        table[key] = table.get(key, 0) + value


def render(merged: Merged, accept: str | None = None) -> tuple[bytes, str]:
    """The exposition of ``merged`` and its content type, in the format ``accept`` asks
    for (OpenMetrics when it says so, else Prometheus text)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import choose_encoder

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(merged))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


class _Collector:
    """Yields prometheus-client metric families for a merged snapshot."""

    def __init__(self, merged: Merged) -> None:
        self.merged = merged

    def collect(self) -> list[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )
        from prometheus_client.utils import floatToGoString

        out: list[Any] = []
        metric: Any
        for name, family in FAMILIES.items():
            table = self.merged.get(name, {})
            if family.kind == "histogram":
                metric = HistogramMetricFamily(name, family.help, labels=family.labels)
                bounds = [floatToGoString(b) for b in family.buckets] + ["+Inf"]  # type: ignore[no-untyped-call]
                for labels, values in sorted(table.items()):
                    running, buckets = 0.0, []
                    for bound, count in zip(bounds, values, strict=False):
                        running += count
                        buckets.append((bound, running))
                    metric.add_metric(list(labels), buckets, values[-1])
            else:
                kind = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
                metric = kind(name, family.help, labels=family.labels)
                for labels, value in sorted(table.items()):
                    metric.add_metric(list(labels), value)
            out.append(metric)
        return out
