"""The perf guard: the request path (routing, format conversion, dispatch bookkeeping,
settlement, trace assembly; no sockets) may not grow to 30% more instructions per request
than the committed baseline. Instructions, counted by callgrind, do not depend on how busy
the machine is; a change that costs more on purpose updates bench/perf-baseline.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.instructions import in_process

BASELINE = json.loads((Path(__file__).parents[2] / "bench" / "perf-baseline.json").read_text())

pytestmark = pytest.mark.skipif(
    shutil.which("valgrind") is None, reason="valgrind is not installed (.ci/run installs it)"
)


@pytest.mark.parametrize("kind", ["json", "stream"])
def test_the_request_path_costs_no_more_than_the_baseline_allows(kind: str) -> None:
    measured = in_process(150, stream=kind == "stream")
    limit = BASELINE[kind] * BASELINE["fail_above"]
    assert measured <= limit, (
        f"{kind}: {measured:,.0f} instructions per request, more than {BASELINE['fail_above']}x "
        f"the baseline of {BASELINE[kind]:,}: profile it (python -m bench.profile) before "
        "raising the baseline"
    )
