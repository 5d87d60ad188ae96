"""Idle keep-alive connections: what they cost ``crossroads serve`` and its live traffic.

    python -m bench.connections --idle 10000 [--rate 200 --duration 15 --limit 1000]

Starts the fake upstream and one crossroads worker (heuristic config, SQLite traces, with
``idle_timeout_s`` and ``header_timeout_s`` raised so nothing idle is closed during the run),
then:

1. live traffic (open loop at ``--rate``) with no idle connection: the baseline;
2. opens ``--idle`` connections, each served one ``GET /health`` and then left idle, and
   reports the server's RSS and open descriptors before and after;
3. the same live traffic while the idle connections are held; checks that the server
   closed none of them; closes them; the live traffic once more (a second baseline);
4. a second server with ``max_connections: --limit``: ``--limit`` idle connections, then
   one more must be answered 503 ``too_many_connections``; after one idle connection is
   closed, a new one is served again.

Prints a markdown table and writes the JSON to ``bench/out/connections-<time>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import select
import socket
import time
from pathlib import Path
from typing import Any

import orjson

from bench.procs import OUT, Service, open_load, rss_mb, run_loadgen, start_fake_upstream
from bench.targets import CONFIGS, crossroads_service

HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _config(base: str, max_connections: int) -> Path:
    """``bench/configs/<base>.yaml`` with raised idle/head timeouts and ``max_connections``."""
    text = (CONFIGS / f"{base}.yaml").read_text()
    limits = (
        "server:\n"
        "  idle_timeout_s: 3600\n"
        "  header_timeout_s: 3600\n"
        f"  max_connections: {max_connections}\n"
    )
    assert "\nserver:\n" in text
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"connections-{os.getpid()}-{max_connections}.yaml"
    path.write_text(text.replace("\nserver:\n", "\n" + limits, 1))
    return path


def _service(base: str, upstream: str, cpus: str, max_connections: int) -> Service:
    service = crossroads_service(base, upstream, cpus)
    at = service.cmd.index("-c", service.cmd.index("serve")) + 1
    service.cmd[at] = str(_config(base, max_connections))
    service.name = f"crossroads-connections-{max_connections}"
    return service


def _port(service: Service) -> int:
    return int(service.url.rsplit(":", 1)[1].split("/", 1)[0])


def _read_answer(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """One small HTTP answer (head and a Content-Length body), or what arrived before EOF."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def open_idle(port: int, count: int) -> tuple[list[socket.socket], dict[str, int]]:
    """``count`` connections, each served one ``GET /health`` and kept open (idle)."""
    socks: list[socket.socket] = []
    outcomes: dict[str, int] = {}
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            sock.sendall(HEALTH)
            answer = _read_answer(sock)
        except OSError as exc:
            sock.close()
            key = type(exc).__name__
        else:
            status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "eof"
            key = f"status {status}"
            if status == "200" and b"connection: close" not in answer.lower():
                socks.append(sock)
            else:
                sock.close()
        outcomes[key] = outcomes.get(key, 0) + 1
    return socks, outcomes


def still_open(socks: list[socket.socket]) -> int:
    """How many of ``socks`` the server has not closed (nothing readable: no EOF, no data)."""
    alive = 0
    for at in range(0, len(socks), 512):
        batch = socks[at : at + 512]
        poller = select.poll()
        for sock in batch:
            poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
        readable = {fd for fd, _ in poller.poll(0)}
        alive += sum(1 for sock in batch if sock.fileno() not in readable)
    return alive


def _fds(pid: int) -> int:
    with contextlib.suppress(OSError):
        return len(os.listdir(f"/proc/{pid}/fd"))
    return -1


def _raise_nofile(wanted: int) -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE towards ``wanted`` (at most the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _live(service: Service, args: argparse.Namespace) -> dict[str, Any]:
    load = open_load(service.url, args.rate, args.duration, warmup=1)
    summary = run_loadgen(load, args.cpu_aux, timeout=args.duration + 120)
    return {
        "requests": summary["requests"],
        "errors": summary["errors"],
        "error_kinds": summary["error_kinds"],
        "p50_ms": summary["latency_ms"]["p50"],
        "p99_ms": summary["latency_ms"]["p99"],
        "throughput": summary["throughput"],
    }


def idle_run(upstream: Service, args: argparse.Namespace, count: int) -> dict[str, Any]:
    """Steps 1-3 of the module docstring."""
    service = _service(args.config, upstream.url, args.cpu_sut, max(16384, count + 2048))
    result: dict[str, Any] = {"idle_wanted": args.idle, "idle_possible": count}
    socks: list[socket.socket] = []
    try:
        service.start(timeout=60)
        run_loadgen(  # warm-up, outside every window
            ["--url", service.url + "/chat/completions", "--model", "auto", "--duration", "2"],
            args.cpu_aux,
            60,
        )
        result["baseline"] = _live(service, args)
        time.sleep(1)
        result["rss_before_mb"], result["fds_before"] = rss_mb(service.pid), _fds(service.pid)
        started = time.monotonic()
        socks, result["idle_outcomes"] = open_idle(_port(service), count)
        result["idle_open_s"] = round(time.monotonic() - started, 1)
        result["idle_held"] = len(socks)
        time.sleep(2)
        result["rss_idle_mb"], result["fds_idle"] = rss_mb(service.pid), _fds(service.pid)
        held = max(1, len(socks))
        result["kb_per_connection"] = round(
            (result["rss_idle_mb"] - result["rss_before_mb"]) * 1024 / held, 1
        )
        result["with_idle"] = _live(service, args)
        result["rss_with_idle_after_load_mb"] = rss_mb(service.pid)
        result["idle_still_open"] = still_open(socks)
        for sock in socks:
            sock.close()
        socks = []
        time.sleep(3)
        result["rss_after_close_mb"], result["fds_after_close"] = (
            rss_mb(service.pid),
            _fds(service.pid),
        )
        result["baseline_after"] = _live(service, args)
    finally:
        for sock in socks:
            sock.close()
        service.stop()
    return result


def limit_run(upstream: Service, args: argparse.Namespace) -> dict[str, Any]:
    """Step 4: ``--limit`` connections held, one more is answered 503."""
    service = _service(args.config, upstream.url, args.cpu_sut, args.limit)
    result: dict[str, Any] = {"max_connections": args.limit}
    socks: list[socket.socket] = []
    try:
        service.start(timeout=60)
        time.sleep(0.5)  # the readiness probe's connection has gone
        socks, result["held_outcomes"] = open_idle(_port(service), args.limit)
        result["held"] = len(socks)
        extra = socket.create_connection(("127.0.0.1", _port(service)), timeout=10)
        with extra:
            with contextlib.suppress(OSError):
                extra.sendall(HEALTH)
            answer = _read_answer(extra)
        head, _, body = answer.partition(b"\r\n\r\n")
        result["next_status_line"] = head.split(b"\r\n", 1)[0].decode(errors="replace")
        result["next_body"] = body[:300].decode(errors="replace")
        socks.pop().close()
        time.sleep(0.5)
        again, outcomes = open_idle(_port(service), 1)
        result["after_one_closed"] = outcomes
        socks += again
    finally:
        for sock in socks:
            sock.close()
        service.stop()
    return result


def table(result: dict[str, Any]) -> str:
    """The results as markdown."""
    idle, limit = result["idle"], result["limit"]
    base, loaded, after = idle["baseline"], idle["with_idle"], idle["baseline_after"]
    n = idle["idle_held"]

    def ratio(key: str) -> str:
        return f"{loaded[key] / base[key]:.2f}×" if base[key] else "–"

    rows = [
        "| measure | value |",
        "|---|---|",
        f"| idle keep-alive connections held (wanted {idle['idle_wanted']}) | {n} "
        f"(opened in {idle['idle_open_s']} s; {idle['idle_still_open']} still open after "
        f"the loaded run; outcomes {idle['idle_outcomes']}) |",
        f"| client RLIMIT_NOFILE soft/hard | {result['nofile'][0]}/{result['nofile'][1]} |",
        f"| server RSS before / with idle / after close, MB | {idle['rss_before_mb']} / "
        f"{idle['rss_idle_mb']} / {idle['rss_after_close_mb']} |",
        f"| server RSS per idle connection | {idle['kb_per_connection']} KB |",
        f"| server open fds before / with idle / after close | {idle['fds_before']} / "
        f"{idle['fds_idle']} / {idle['fds_after_close']} |",
        f"| live {result['rate']:g} req/s, no idle: p50 / p99 ms | {base['p50_ms']:.2f} / "
        f"{base['p99_ms']:.2f} ({base['requests']} req, {base['errors']} errors) |",
        f"| live, {n} idle held: p50 / p99 ms | {loaded['p50_ms']:.2f} / "
        f"{loaded['p99_ms']:.2f} ({loaded['requests']} req, {loaded['errors']} errors) |",
        f"| live, after closing them: p50 / p99 ms | {after['p50_ms']:.2f} / "
        f"{after['p99_ms']:.2f} ({after['requests']} req, {after['errors']} errors) |",
        f"| with idle ÷ first baseline: p50 / p99 | {ratio('p50_ms')} / {ratio('p99_ms')} |",
        f"| max_connections {limit['max_connections']}: held | {limit['held']} "
        f"({limit['held_outcomes']}) |",
        f"| connection {limit['max_connections'] + 1} got | `{limit['next_status_line']}` "
        f"`{limit['next_body'][:120]}` |",
        f"| after closing one, a new connection got | {limit['after_one_closed']} |",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """Run both parts and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.connections")
    parser.add_argument("--idle", type=int, default=10000, help="idle connections to hold")
    parser.add_argument("--rate", type=float, default=200.0, help="live traffic, req/s")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per live run")
    parser.add_argument("--limit", type=int, default=1000, help="max_connections to check")
    parser.add_argument("--config", default="crossroads-heuristic")
    parser.add_argument("--cpu-sut", default="1")
    parser.add_argument("--cpu-aux", default="0")
    args = parser.parse_args(argv)
    # The servers inherit this limit too: raise it before starting them.
    nofile = _raise_nofile(max(args.idle, args.limit) + 512)
    possible = max(0, min(args.idle, nofile[0] - 256))
    if possible < args.idle:
        print(f"RLIMIT_NOFILE {nofile}: holding {possible} idle connections, not {args.idle}")
    upstream = start_fake_upstream(args.cpu_aux, 8, 1800)
    try:
        result: dict[str, Any] = {"rate": args.rate, "duration": args.duration, "nofile": nofile}
        result["idle"] = idle_run(upstream, args, possible)
        result["limit"] = limit_run(upstream, args)
    finally:
        upstream.stop()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = OUT / f"connections-{stamp}.json"
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(table(result))
    print(f"\n{path}")


if __name__ == "__main__":
    main()
