"""What an online selector costs per request: selection (on the request path) and feedback
(off it), counted in instructions by callgrind (deterministic on a busy machine), plus CPU
µs per call outside valgrind.

    python -m bench.online [--calls 2000] [--models 3] [--signals 2] [--embedding-dims 16]

The selector runs as the gateway runs it: memory state backend, statistics exchanged every
``--sync-every`` calls (a replica does it every second on a timer), one observation per
selection. Each method is warmed up with 500 observed requests first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

from bench.instructions import _callgrind, _collected, _toggle

WARM = 500


def _selector(method: str, models: int, signals: int, dims: int) -> Any:
    from crossroads.config import parse_config
    from crossroads.online.base import OnlineSelector
    from crossroads.selection import build_selector

    names = [f"m{i}" for i in range(models)]
    selection: dict[str, Any] = {"method": method, "objective": {"lambda": 1.0}, "seed": 0}
    if method != "ema":
        selection["features"] = {
            "signals": [f"keyword:s{i}" for i in range(signals)],
            "embedding_dims": dims,
        }
    cfg = parse_config(
        {
            "upstreams": [{"name": "u", "kind": "mock"}],
            "models": [{"name": n, "upstream": "u"} for n in names],
            "signals": [
                {"kind": "keyword", "name": f"s{i}", "keywords": ["x"]} for i in range(signals)
            ],
            "state": {"backend": "memory"},
            "default": {"models": names, "selection": selection},
        }
    )
    s = build_selector(cfg.default.selection)
    assert isinstance(s, OnlineSelector)
    s.bind("default", names, cfg)
    s.autosync = False
    s.prepare()
    return s


def _request(t: int, signals: int, vector: Any) -> Any:
    from crossroads.types import RoutingRequest, SignalResult

    results = {
        f"keyword:s{i}": SignalResult(f"keyword:s{i}", (t + i) % 2 == 0, "x")
        for i in range(signals)
    }
    return RoutingRequest(
        text="x", prompt_tokens=40 + t % 50, trace_id=f"t{t}", signals=results, vector=vector
    )


async def _calls(
    s: Any, start: int, n: int, signals: int, sync_every: int, observe: bool = True
) -> tuple[float, float]:
    import numpy as np

    from crossroads.types import Candidate

    rng = np.random.default_rng(start)
    vectors = rng.normal(size=(64, 384)) / np.sqrt(384)
    select_s = observe_s = 0.0
    for t in range(start, start + n):
        request = _request(t, signals, vectors[t % 64])
        candidates = [Candidate(m, 0.001 * (i + 1)) for i, m in enumerate(s.models)]
        t0 = time.process_time()
        chosen = await s.aselect(request, candidates)
        t1 = time.process_time()
        select_s += t1 - t0
        if observe:
            await s.observe(f"t{t}", 0.9 if chosen.model == s.models[-1] else 0.3)
            observe_s += time.process_time() - t1
            if (t + 1) % sync_every == 0:
                await s.sync()
    return select_s / n * 1e6, observe_s / n * 1e6


def _in_callgrind(args: argparse.Namespace, method: str, observe: bool) -> float:
    import subprocess

    cmd = [sys.executable, "-m", "bench.online", "--child", method]
    cmd += ["--calls", str(args.calls), "--models", str(args.models)]
    cmd += ["--signals", str(args.signals), "--embedding-dims", str(args.embedding_dims)]
    cmd += ["--sync-every", str(args.sync_every)] + ([] if observe else ["--no-observe"])
    child = _callgrind(cmd, cwd=os.getcwd(), stdout=subprocess.DEVNULL)
    _, err = child.communicate(timeout=3600)
    if child.returncode != 0:
        raise SystemExit(err.decode()[-2000:])
    return _collected(err) / args.calls


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.online")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--signals", type=int, default=2)
    parser.add_argument("--embedding-dims", type=int, default=16)
    parser.add_argument("--sync-every", type=int, default=200)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--no-observe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    methods = ("linucb", "thompson", "ema")
    if args.child:
        s = _selector(args.child, args.models, args.signals, args.embedding_dims)
        asyncio.run(_calls(s, 0, WARM, args.signals, args.sync_every))
        observe = not args.no_observe
        _toggle(os.getpid(), True)
        asyncio.run(_calls(s, WARM, args.calls, args.signals, args.sync_every, observe))
        _toggle(os.getpid(), False)
        return
    d = _selector("linucb", args.models, args.signals, args.embedding_dims).features.dimension
    print(
        f"{args.models} models, {args.signals} signals, embedding {args.embedding_dims} dims "
        f"(context width {d}), sync every {args.sync_every} calls"
    )
    for method in methods:
        s = _selector(method, args.models, args.signals, args.embedding_dims)
        asyncio.run(_calls(s, 0, WARM, args.signals, args.sync_every))
        select_us, observe_us = asyncio.run(
            _calls(s, WARM, args.calls, args.signals, args.sync_every)
        )
        selecting = _in_callgrind(args, method, observe=False)
        total = _in_callgrind(args, method, observe=True)
        print(
            f"{method:9s} select {selecting:>9,.0f} instructions, select+observe+sync share "
            f"{total:>9,.0f}; CPU µs: select {select_us:6.1f}, observe {observe_us:6.1f}"
        )


if __name__ == "__main__":
    main()
