"""Learned signals: latency per signal and all together, alone and under concurrency.

For a 20-word and a ~2,000-token prompt: the ``embedding`` signal and each learned signal
(``domain``, ``complexity``, ``jailbreak``, ``ood``) alone, then all five on the same
request as the pipeline runs them (concurrently, sharing one encoder session; the four
heads share one embedding), first one request at a time, then with ``--clients``
concurrent requests (distinct texts, so nothing is shared between requests but the
micro-batches). The cheap ``language`` and ``pii`` signals alone (one request at a time:
they run inline), and "all seven" as the pipeline runs a policy with all of them. Also
the head alone (the work after the embedding), encoder sessions built and peak RSS.
Needs the exported MiniLM in ``$CROSSROADS_DATA_DIR`` (exported on first use) and the
``language`` extra.

    python -m bench.signals [--clients 50] [--requests 400] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import time
from typing import Any

SHORT = (
    "Can you write a Python function that checks whether a string is a palindrome "
    "while ignoring punctuation and spaces?"
)
PARAGRAPH = (
    "The committee reviewed the quarterly figures for every region, compared them with the "
    "forecasts made in the spring, and noted where costs had grown faster than revenue. "
)
KINDS = ("domain", "complexity", "jailbreak", "ood")
EXTRA = {
    "embedding": {"exemplars": ["solve this equation for x", "write a python function"]},
    "language": {},
    "pii": {},
}
LEARNED = ("embedding", *KINDS)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pct(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "mean_ms": round(statistics.fmean(samples), 2),
        "p99_ms": round(samples[min(len(samples) - 1, int(0.99 * len(samples)))], 2),
        "n": len(samples),
    }


def _request(text: str) -> Any:
    from crossroads.prompts import routing_request

    return routing_request({"model": "auto", "messages": [{"role": "user", "content": text}]})


def _signals() -> dict[str, Any]:
    from crossroads.config import parse_config
    from crossroads.signals import build_signal

    cfg = parse_config(
        {
            "upstreams": [{"name": "u", "kind": "mock"}],
            "models": [{"name": "a", "upstream": "u"}],
            "signals": [
                {"kind": k, "name": "b", "timeout_ms": 60000, **EXTRA.get(k, {})}
                for k in (*LEARNED, "language", "pii")
            ],
        }
    )
    return {s.kind: build_signal(s) for s in cfg.signals}


async def _timed(run: Any, texts: list[str], clients: int) -> list[float]:
    """Latency of ``run(text)`` for every text, ``clients`` at a time."""
    queue = list(texts)
    out: list[float] = []

    async def client() -> None:
        while queue:
            text = queue.pop()
            t0 = time.perf_counter()
            await run(text)
            out.append((time.perf_counter() - t0) * 1000)

    await asyncio.gather(*(client() for _ in range(clients)))
    return out


async def measure(clients: int, requests: int) -> dict[str, Any]:
    """Every measurement of the module docstring, as a dict."""
    from crossroads.embeddings.embedder import sessions_built
    from crossroads.embeddings.shared import shared_batcher, shared_embedder

    rss_before = _rss_mb()
    signals = _signals()
    rss_loaded = _rss_mb()
    encoder = shared_embedder()
    learned = {k: signals[k] for k in LEARNED}
    inline = [signals["language"], signals["pii"]]

    async def encoder_alone(text: str) -> None:
        # The bare encoder call, as the micro-batcher makes it, for comparison.
        await asyncio.to_thread(encoder.encode, [text])

    long_text = PARAGRAPH * 60
    long_tokens = _request(long_text).prompt_tokens
    prompts = {"20 words": SHORT, f"{long_tokens} tokens": long_text}

    async def all_learned(text: str) -> None:
        request = _request(text)
        await asyncio.gather(*(s.evaluate([request]) for s in learned.values()))

    async def all_seven(text: str) -> None:
        request = _request(text)  # as the pipeline: the cheap ones inline, then the others
        for signal in inline:
            signal.compute(request)
        await asyncio.gather(*(s.evaluate([request]) for s in learned.values()))

    result: dict[str, Any] = {"clients": clients, "long_prompt_tokens": long_tokens, "rows": []}
    await all_seven("warm up the encoder and the thread pool")
    for label, base in prompts.items():
        n = requests if label == "20 words" else max(50, requests // 4)
        # Distinct texts: no request reuses another's embedding.
        texts = [f"{i} {base}" for i in range(n)]
        runs: dict[str, Any] = {
            kind: (lambda s: lambda t: s.evaluate([_request(t)]))(signal)
            for kind, signal in signals.items()
        }
        runs["all five learned"] = all_learned
        runs["all seven"] = all_seven
        runs = {"encoder alone": encoder_alone, **runs}
        for name, run in runs.items():
            alone = name in ("encoder alone", "language", "pii")
            for c in (1,) if alone else (1, clients):
                batcher = shared_batcher()
                before = batcher.batches
                started, cpu = time.perf_counter(), time.process_time()
                lat = await _timed(run, texts[: n if c > 1 else n // 2], c)
                wall, cpu = time.perf_counter() - started, time.process_time() - cpu
                row = {"prompt": label, "signal": name, "concurrency": c, **_pct(lat)}
                row["req_per_s"] = round(len(lat) / wall, 1)
                # CPU time of this process (all threads) per request: less sensitive than
                # wall time to other work on a shared machine.
                row["cpu_ms"] = round(cpu / len(lat) * 1000, 2)
                row["mean_batch"] = round(len(lat) / max(1, batcher.batches - before), 1)
                result["rows"].append(row)
    vector = (await shared_batcher().encode(SHORT)).copy()
    result["head_us"] = {}
    for kind in KINDS:
        signal = signals[kind]
        t0 = time.perf_counter()
        for _ in range(2000):
            signal.judge(vector, SHORT)
        result["head_us"][kind] = round((time.perf_counter() - t0) / 2000 * 1e6, 1)
    result["encoder_sessions"] = sessions_built()
    result["rss_mb"] = {
        "before_loading": round(rss_before, 1),
        "all_loaded": round(rss_loaded, 1),
        "peak": round(_rss_mb(), 1),
    }
    return result


def markdown(result: dict[str, Any]) -> str:
    """The result as the tables of bench/RESULTS.md."""
    lines = [
        "| prompt | signal | concurrency | p50 ms | p99 ms | CPU ms per request | req/s | texts per encoder call |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['prompt']} | {r['signal']} | {r['concurrency']} | {r['p50_ms']} | "
            f"{r['p99_ms']} | {r['cpu_ms']} | {r['req_per_s']} | "
            f"{'–' if r['signal'] in ('encoder alone', 'language', 'pii') else r['mean_batch']} |"
        )
    heads = ", ".join(f"{k} {v} µs" for k, v in result["head_us"].items())
    lines.append("")
    lines.append(f"Head alone, after the embedding: {heads}.")
    rss = result["rss_mb"]
    lines.append(
        f"Encoder sessions built: {result['encoder_sessions']}. Peak RSS: "
        f"{rss['before_loading']} MB before loading, {rss['all_loaded']} MB with the encoder, "
        f"the four heads and the language and PII signals loaded, {rss['peak']} MB after the "
        "runs."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    result = asyncio.run(measure(args.clients, args.requests))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    print(markdown(result))


if __name__ == "__main__":
    main()
