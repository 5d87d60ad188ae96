"""Local models: in-process ``llama_cpp.Llama`` vs a managed ``llama_cpp.server`` child.

Measures time to first token and decode speed (streamed, temperature 0, one thread per
model) for each bundled model, alone and with both models generating at once.

    python bench/local_models.py [--runs 5] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

PROMPTS = [
    "The history of the printing press begins",
    "Here is a short story about a lighthouse keeper:",
    "The three most important ideas in economics are",
    "Photosynthesis is the process by which",
    "A good recipe for bread starts with",
]


def summarize(samples: list[tuple[float, int, float]]) -> dict[str, float]:
    """Median TTFT (ms), median decode tok/s over ``(ttft, tokens, decode_seconds)`` samples."""
    ttft = statistics.median(s[0] for s in samples) * 1000
    rates = [(n - 1) / d for _, n, d in samples if n > 1 and d > 0]
    return {"ttft_ms": round(ttft, 1), "tok_s": round(statistics.median(rates), 1)}


def load(path: Path) -> Any:
    from llama_cpp import Llama

    # Load on the main thread: with verbose=False, Llama() swaps file descriptors 1 and 2,
    # and two threads doing so at once leave stdout pointing at /dev/null.
    return Llama(model_path=str(path), n_ctx=2048, n_threads=1, n_threads_batch=1, verbose=False)


def in_process(llm: Any, prompts: list[str], max_tokens: int) -> list[tuple[float, int, float]]:
    lock = threading.Lock()  # what a gateway would hold per model
    out = []
    for prompt in prompts:
        with lock:
            start = time.perf_counter()
            first = last = 0.0
            n = 0
            for _ in llm.create_completion(
                prompt, max_tokens=max_tokens, temperature=0, stream=True
            ):
                now = time.perf_counter()
                first = first or now
                last = now
                n += 1
        out.append((first - start, n, last - first))
    return out


async def over_http(
    url: str, prompts: list[str], max_tokens: int
) -> list[tuple[float, int, float]]:
    import httpx

    out = []
    async with httpx.AsyncClient(timeout=120) as client:
        for prompt in prompts:
            body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True}
            start = time.perf_counter()
            first = last = 0.0
            n = 0
            async with client.stream("POST", f"{url}/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    if json.loads(line[6:])["choices"][0].get("text"):
                        now = time.perf_counter()
                        first = first or now
                        last = now
                        n += 1
            out.append((first - start, n, last - first))
    return out


async def subprocess_mode(names: list[str], prompts: list[str], max_tokens: int) -> dict[str, Any]:
    from crossroads.local import LocalModelPool

    pool = LocalModelPool(names)
    started = time.perf_counter()
    urls = await pool.start()
    results: dict[str, Any] = {"startup_s": round(time.perf_counter() - started, 2)}
    try:
        for name in names:
            await over_http(urls[name], prompts[:1], 4)  # warm up
            results[name] = summarize(await over_http(urls[name], prompts, max_tokens))
        both = await asyncio.gather(*(over_http(urls[n], prompts, max_tokens) for n in names))
        results["both_at_once"] = {n: summarize(s) for n, s in zip(names, both, strict=True)}
    finally:
        await pool.stop()
    return results


def in_process_mode(names: list[str], prompts: list[str], max_tokens: int) -> dict[str, Any]:
    from crossroads.local import locate_model_file

    results: dict[str, Any] = {}
    started = time.perf_counter()
    llms = {n: load(locate_model_file(n)) for n in names}
    results["startup_s"] = round(time.perf_counter() - started, 2)
    for name in names:
        in_process(llms[name], prompts[:1], 4)
        results[name] = summarize(in_process(llms[name], prompts, max_tokens))
    both: dict[str, Any] = {}
    threads = [
        threading.Thread(
            target=lambda n=n: both.__setitem__(n, in_process(llms[n], prompts, max_tokens))
        )
        for n in names
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results["both_at_once"] = {n: summarize(s) for n, s in both.items()}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    names = ["smollm2-135m-instruct", "gemma-3-270m"]
    prompts = (PROMPTS * args.runs)[: args.runs]
    report = {
        "subprocess": asyncio.run(subprocess_mode(names, prompts, args.max_tokens)),
        "in_process": in_process_mode(names, prompts, args.max_tokens),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
