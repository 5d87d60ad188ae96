"""PII detection: precision and recall per type on a labelled set, and the signal's latency.

The set is ``bench/data/pii_labelled.tsv`` (hand-written for crossroads: positives of every
type, and tricky negatives: order numbers, dates, versions, UUIDs, hashes, ISBNs, look-alikes
that fail their checksum). A finding counts as a true positive when its line expects that
type (as many times as listed). For comparison, the trace masking of
:func:`crossroads.redact.scrub` (built to err on the side of masking) on the same lines: how
many lines with PII it changes and how many clean lines it changes.

In the wild (``--datasets``): the findings per type on every prompt of the shared routing
datasets with prompt text, and a few of each (with 40 characters of context) to review by
hand: they are public benchmark prompts, where PII is rare and most findings would be false.

Latency: the ``pii`` signal on a 20-word and a ~2,000-token prompt, with and without PII.

    python -m bench.pii [--datasets ../shared/data] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.signals import PARAGRAPH, SHORT

DATA = Path(__file__).parent / "data" / "pii_labelled.tsv"


def labelled() -> list[tuple[Counter[str], str]]:
    """``(expected type counts, text)`` per line of the set."""
    rows = []
    for line in DATA.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        types, text = line.split("\t", 1)
        expected = Counter() if types == "-" else Counter(types.split(","))
        rows.append((expected, text))
    return rows


def quality() -> dict[str, Any]:
    """Per-type and overall precision/recall, and the false positives by line."""
    from crossroads.pii import PII_TYPES, find_pii
    from crossroads.redact import scrub

    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    mistakes = []
    scrub_changed = {"with PII": 0, "clean": 0}
    rows = labelled()
    for expected, text in rows:
        found = Counter(f.type for f in find_pii(text))
        for kind in set(expected) | set(found):
            tp[kind] += min(expected[kind], found[kind])
            fp[kind] += max(0, found[kind] - expected[kind])
            fn[kind] += max(0, expected[kind] - found[kind])
        if found != expected:
            mistakes.append({"expected": dict(expected), "found": dict(found), "text": text})
        if scrub(text) != text:
            scrub_changed["with PII" if expected else "clean"] += 1

    def pr(t: int, f_pos: int, f_neg: int) -> dict[str, Any]:
        return {
            "tp": t,
            "fp": f_pos,
            "fn": f_neg,
            "precision": round(t / (t + f_pos), 3) if t + f_pos else None,
            "recall": round(t / (t + f_neg), 3) if t + f_neg else None,
        }

    per_type = {k: pr(tp[k], fp[k], fn[k]) for k in PII_TYPES}
    overall = pr(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    clean = [text for expected, text in rows if not expected]
    flagged_clean = sum(1 for text in clean if find_pii(text))
    return {
        "lines": len(rows),
        "lines_with_pii": len(rows) - len(clean),
        "clean_lines": len(clean),
        "clean_lines_flagged": flagged_clean,
        "per_type": per_type,
        "overall": overall,
        "scrub_changed": scrub_changed,
        "mistakes": mistakes,
    }


def in_the_wild(root: Path, per_type: int = 10) -> dict[str, Any]:
    """Findings per type over the shared datasets' prompts, with samples to review."""
    import random

    import pandas as pd

    from crossroads.pii import find_pii

    counts: Counter[str] = Counter()
    samples: dict[str, list[str]] = {}
    prompts = 0
    names = ["routellm-evals", "routerdc-7model", "alpacaeval2", "routerarena-sub10"]
    for name in names:
        frame = pd.read_parquet(root / name / "routing.parquet", columns=["prompt"])
        for text in frame.prompt.tolist():
            prompts += 1
            for f in find_pii(text):
                counts[f.type] += 1
                context = text[max(0, f.start - 40) : f.end + 40].replace("\n", " ")
                samples.setdefault(f.type, []).append(context)
    rng = random.Random(0)
    return {
        "datasets": names,
        "prompts": prompts,
        "findings": dict(counts),
        "samples": {t: rng.sample(s, min(per_type, len(s))) for t, s in samples.items()},
    }


def _timing(run: Any, n: int) -> dict[str, float]:
    run()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        run()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 4),
        "p99_ms": round(samples[int(0.99 * len(samples))], 4),
    }


def latency() -> dict[str, Any]:
    """The ``pii`` signal's compute per prompt, as the pipeline calls it."""
    from crossroads.config import parse_config
    from crossroads.prompts import routing_request
    from crossroads.signals import build_signal

    cfg = parse_config(
        {
            "upstreams": [{"name": "u", "kind": "mock"}],
            "models": [{"name": "a", "upstream": "u"}],
            "signals": [{"kind": "pii", "name": "any"}],
        }
    )
    signal = build_signal(cfg.signals[0])
    with_pii = "Card 4111 1111 1111 1111, mail jane@example.com, call +1 415 555 2671. "
    prompts = {
        "20 words": SHORT,
        "20 words with PII": with_pii + SHORT,
        "2000 tokens": PARAGRAPH * 60,
        "2000 tokens with PII": PARAGRAPH * 30 + with_pii + PARAGRAPH * 30,
    }
    out = {}
    for label, text in prompts.items():
        request = routing_request(
            {"model": "auto", "messages": [{"role": "user", "content": text}]}
        )
        out[label] = _timing(
            lambda r=request: signal.compute(r), 3000 if "20" in label[:3] else 500
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--datasets", type=Path, help="the shared data folder")
    args = parser.parse_args()
    result: dict[str, Any] = {"quality": quality(), "latency": latency()}
    if args.datasets:
        result["wild"] = in_the_wild(args.datasets)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
