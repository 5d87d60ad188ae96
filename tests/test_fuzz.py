"""The atheris fuzz targets of fuzz/, each run briefly from its seed corpus (regression
inputs included). Skipped where atheris is not installed (it has wheels for Linux x86_64
only). Longer runs: see docs/development.md."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ["protocol", "upstream_response"]
RUNS = 10000


@pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris is not installed (pip install -e '.[dev]' on Linux x86_64)",
)
@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_finds_nothing(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"  # libFuzzer adds what it finds to its corpus: a copy
    shutil.copytree(ROOT / "fuzz" / "corpus" / target, corpus)
    args = [sys.executable, str(ROOT / "fuzz" / f"{target}.py"), f"-runs={RUNS}", "-seed=1"]
    args += ["-max_total_time=60", f"-artifact_prefix={tmp_path}/", str(corpus)]
    words = ROOT / "fuzz" / f"{target}.dict"
    if words.exists():
        args.insert(2, f"-dict={words}")
    done = subprocess.run(args, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"Done {RUNS} runs" in done.stderr
