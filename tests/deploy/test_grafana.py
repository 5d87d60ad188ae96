"""The Grafana dashboard in deploy/grafana is valid JSON whose queries use only metrics and
labels the gateway exports, and it shows every metric the gateway exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from crossroads.observe.metrics import FAMILIES

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "crossroads.json"
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
EXTRA_LABELS = {"job", "instance", "le"}  # added by Prometheus, or a histogram's own


def _queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def _family(sample_name: str) -> str:
    for name, family in FAMILIES.items():
        for suffix in SUFFIXES[family.kind]:
            if sample_name == name + suffix:
                return name
    raise AssertionError(
        f"the dashboard queries {sample_name!r}, which the gateway does not export"
    )


def test_dashboard_is_a_grafana_dashboard_with_unique_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 30
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for panel in dashboard["panels"]:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"]
    assert {"datasource", "job"} <= variables


def test_queries_use_only_exported_metrics_and_their_labels() -> None:
    used = set()
    for query in _queries():
        names = re.findall(r"\bcrossroads_[a-z_]+", query)
        assert names, query
        families = {_family(n) for n in names}
        used |= families
        allowed = EXTRA_LABELS.union(*(FAMILIES[f].labels for f in families))
        labels = set()
        for group in re.findall(r"\bby \(([^)]*)\)", query):
            labels |= {label.strip() for label in group.split(",") if label.strip()}
        for matchers in re.findall(r"crossroads_[a-z_]+\{([^}]*)\}", query):
            labels |= set(re.findall(r"([a-z_]+)\s*(?:=~|!=|!~|=)", matchers))
        assert labels <= allowed, f"{query}: unknown labels {labels - allowed}"
    assert used == set(FAMILIES), f"not on the dashboard: {sorted(set(FAMILIES) - used)}"
