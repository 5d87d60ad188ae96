"""The benchmark's load generator and report, against the in-process fake upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.loadgen import LoadSpec, percentile, run_spec
from bench.report import render_report
from tests.support import FakeUpstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(chunks=3) as up:
        yield up


@pytest.mark.parametrize("stream", [False, True])
def test_closed_loop_counts_every_answer(upstream: FakeUpstream, stream: bool) -> None:
    url = upstream.base_url + "/chat/completions"
    result = run_spec(LoadSpec(url=url, stream=stream, connections=4, duration=0.5, warmup=0.1))
    assert result["ok"] > 50 and result["errors"] == 0
    assert result["throughput"] > 50
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
    assert result["sent_total"] >= result["requests"]


def test_open_loop_holds_the_rate(upstream: FakeUpstream) -> None:
    url = upstream.base_url + "/chat/completions"
    result = run_spec(LoadSpec(url=url, mode="open", rate=200, duration=0.5, warmup=0.1))
    assert result["requests"] == pytest.approx(100, abs=3)
    assert result["throughput"] == pytest.approx(200, rel=0.15)


def test_failures_are_counted_not_raised(upstream: FakeUpstream) -> None:
    upstream.set_fault("503", probability=0.5, count=None)
    try:
        url = upstream.base_url + "/chat/completions"
        result = run_spec(LoadSpec(url=url, connections=2, duration=0.3, warmup=0))
    finally:
        upstream.set_fault(None)
    assert result["errors"] > 0 and result["ok"] > 0
    assert result["error_kinds"]["status 503"] == result["errors"]


def test_cut_streams_are_errors(upstream: FakeUpstream) -> None:
    upstream.set_fault("cut_stream:2")
    try:
        url = upstream.base_url + "/chat/completions"
        result = run_spec(LoadSpec(url=url, stream=True, connections=2, duration=0.3, warmup=0))
    finally:
        upstream.set_fault(None)
    assert result["ok"] == 0 and result["errors"] > 0


def test_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0 or percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) == 0.0


def test_report_gives_added_latency_against_direct() -> None:
    def summary(p50: float, rate: float) -> dict[str, object]:
        lat = {"p50": p50, "p90": p50 * 2, "p99": p50 * 3, "max": p50 * 4, "mean": p50}
        return {
            "throughput": rate,
            "errors": 0,
            "requests": 100,
            "ok": 100,
            "rate_target": 100,
            "latency_ms": lat,
            "ttfb_ms": lat,
            "loadgen_cpu": 0.1,
        }

    runs = [
        {
            "direct": {"loads": {"open-100": summary(0.5, 100)}},
            "crossroads:x": {"loads": {"open-100": summary(1.5, 100)}},
        },
    ]
    data = {
        "machine": {
            "date": "d",
            "cpus": 2,
            "python": "3.11",
            "cpu_sut": "1",
            "cpu_aux": "0",
            "loadavg_start": [1.0],
            "loadavg_end": [1.0],
            "argv": ["bench"],
        },
        "targets": ["direct", "crossroads:x"],
        "loads": ["open-100"],
        "runs": runs,
    }
    report = render_report(data)
    assert (
        "| open-100 | crossroads x | 100 | 1.50 | 3.00 | 4.50 | 1.00 | 2.00 | 3.00 | 0 |" in report
    )
