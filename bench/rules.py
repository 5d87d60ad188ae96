"""Rules: the time one decision's predicate takes, a reference against comparisons.

Each rule is compiled as the pipeline compiles it and tested over computed signal results
(no signal work): a reference (``tokens:long``), a numeric comparison
(``tokens:prompt >= 4000``), a label set (``metadata:team in [a, b, c]``), and a reference
and a comparison under ``all``. The times include one Python call of the predicate.

    python -m bench.rules [--number 1000000]
"""

from __future__ import annotations

import argparse
import timeit

from crossroads.config import parse_config
from crossroads.decisions import compile_entrypoints
from crossroads.types import SignalResult

CONFIG = {
    "upstreams": [{"name": "u", "base_url": "http://127.0.0.1:9/v1"}],
    "models": [{"name": "a", "upstream": "u"}],
    "signals": [
        {"kind": "tokens", "name": "long", "min": 4000},
        {"kind": "tokens", "name": "prompt"},
        {"kind": "metadata", "name": "team", "source": "user", "values": ["a"]},
    ],
}
RULES = {
    "reference": "tokens:long",
    "number": "tokens:prompt >= 4000",
    "label set": "metadata:team in [a, b, c]",
    "all(reference, number)": {"all": ["tokens:long", "tokens:prompt >= 4000"]},
}
SIGNALS = {
    "tokens:long": SignalResult("tokens:long", True, 5000),
    "tokens:prompt": SignalResult("tokens:prompt", True, 5000),
    "metadata:team": SignalResult("metadata:team", False, "z"),
}


def main() -> None:
    """Print nanoseconds per predicate call for each rule."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=1_000_000)
    args = parser.parse_args()
    for name, rule in RULES.items():
        cfg = parse_config({**CONFIG, "decisions": [{"name": "d", "when": rule, "models": ["a"]}]})
        test = compile_entrypoints(cfg)["auto"].decisions[0].test
        call = timeit.Timer("test(signals)", globals={"test": test, "signals": SIGNALS})
        seconds = min(call.repeat(number=args.number, repeat=3))
        print(f"{name:24s} {seconds / args.number * 1e9:6.0f} ns")


if __name__ == "__main__":
    main()
