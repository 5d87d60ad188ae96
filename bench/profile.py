"""Profile ``crossroads serve`` under load with py-spy and print where the time goes.

    python -m bench.profile --config crossroads-heuristic --duration 15 [--stream]

Starts the fake upstream and crossroads (pinned like ``python -m bench``), drives a
closed-loop load, records the server with ``py-spy record --format raw`` (collapsed
stacks, plus an SVG flame graph) into ``bench/out``, then prints the functions with the
most samples: *self* (the frame itself is running) and *inclusive* (on the stack).
Needs ``pip install py-spy`` and permission to ptrace (root, or ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench.procs import OUT, ROOT, pinned, start_fake_upstream
from bench.targets import crossroads_service

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def summarise_collapsed(path: Path, top: int = 25) -> str:
    """Top frames by self and inclusive samples of a py-spy ``raw`` (collapsed) file."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [_short(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    out = [f"{total} samples", "", "self %  function"]
    out += [f"{100 * n / total:6.1f}  {f}" for f, n in own.most_common(top)]
    out += ["", "incl %  function"]
    out += [f"{100 * n / total:6.1f}  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(out)


def _short(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if not match:
        return frame
    file = match["file"]
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{match['func']} ({file})"


def main(argv: list[str] | None = None) -> None:
    """Profile one crossroads config under a closed-loop load."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--config", default="crossroads-heuristic")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--rate", type=float, default=0, help="open loop at this rate (0: closed)")
    parser.add_argument("--cpu-sut", default="1")
    parser.add_argument("--cpu-aux", default="0")
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames)")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        sys.exit("py-spy not found: pip install py-spy")
    upstream = start_fake_upstream(args.cpu_aux, 8, args.duration + 120)
    service = crossroads_service(args.config, upstream.url, args.cpu_sut)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"profile-{args.config}{'-stream' if args.stream else ''}-{stamp}"
    try:
        service.start(timeout=60)
        load = [
            "--url",
            service.url + "/chat/completions",
            "--model",
            "auto",
            "--warmup",
            "1",
            "--duration",
            str(args.duration + 3),
        ]
        if args.rate:
            load += ["--mode", "open", "--rate", str(args.rate)]
        else:
            load += ["--mode", "closed", "--connections", str(args.connections)]
        if args.stream:
            load.append("--stream")
        cmd = pinned([sys.executable, "-m", "bench.loadgen", *load], args.cpu_aux)
        loadgen = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE)
        time.sleep(2)
        # --native cannot sample without pausing the process (py-spy refuses both).
        mode = ["--native"] if args.native else ["--nonblocking"]
        spy = [py_spy, "record", "-p", str(service.pid), "-d", str(int(args.duration)), "-r", "250"]
        raw = OUT / f"{name}.txt"
        done = subprocess.run([*spy, *mode, "--format", "raw", "-o", str(raw)], capture_output=True)
        if done.returncode != 0:
            loadgen.kill()
            sys.exit(f"py-spy failed: {done.stderr.decode()[-1000:]}")
        out, _ = loadgen.communicate(timeout=args.duration + 60)
        print(out.decode().strip())
        print(summarise_collapsed(raw))
        print(f"\ncollapsed stacks: {raw.relative_to(ROOT)}")
    finally:
        service.stop()
        upstream.stop()


if __name__ == "__main__":
    main()
