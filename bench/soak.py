"""Memory soak: RSS of ``crossroads serve`` over a long run at a fixed rate.

    python -m bench.soak --config crossroads-heuristic --rate 200 --minutes 10
    python -m bench.soak --rate 200 --minutes 10 --slow-clients 50

Starts the fake upstream and crossroads (pinned like ``python -m bench``), sends an
open-loop load, samples the server's RSS every ``--every`` seconds, and prints the
samples and the growth from the first minute to the end.

``--slow-clients K``: after a first phase of ``--baseline-minutes`` with live traffic only,
K slowloris-style clients (see :class:`SlowClients`) keep cycling beside the live traffic
until the end. The result counts how the server cut them (408s, closes), the RSS growth
during that phase, and the live traffic's p50/p99 in each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import select
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import orjson

from bench.loadgen import percentile
from bench.procs import OUT, ROOT, open_load, pinned, rss_mb, start_fake_upstream
from bench.targets import crossroads_service

SLOW_HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nX-Slow: "
)
CYCLE_CAP_S = 240.0  # a slow client gives up by itself after this (counted as "not cut")


def _server_side_state(server_port: int, client_port: int) -> str:
    """The TCP state (``/proc/net/tcp`` hex code, ``01`` established) of the server's end of
    the connection from ``client_port``; ``""`` when the server holds no such socket."""
    local, remote = f":{server_port:04X}", f":{client_port:04X}"
    with open("/proc/net/tcp") as table:
        for line in table:
            fields = line.split()
            if fields[1].endswith(local) and fields[2].endswith(remote):
                return fields[3]
    return ""


class SlowClients:
    """``count`` slowloris-style clients cycling in a thread until :meth:`stop`.

    Client ``i`` plays kind ``i % 3``: ``head`` (half a request head, then one byte a
    second), ``body`` (a whole head announcing 2,000 body bytes, then one byte a second),
    ``stream`` (``pipeline`` stream requests written at once, never a byte read, on a
    socket with a 4 KiB receive buffer). Each cycle ends when the server answers or closes
    the connection (for ``stream``: an RST seen on the socket, or the server's end of it
    leaving ESTABLISHED in ``/proc/net/tcp``); ``outcomes`` counts how (``408``, ``close``,
    ``reset``, ``not cut``)
    and ``seconds`` keeps the time to the cut per kind.
    """

    KINDS = ("head", "body", "stream")

    def __init__(self, port: int, count: int, pipeline: int = 32) -> None:
        self.port = port
        self.count = count
        self.pipeline = pipeline
        self.outcomes: dict[str, dict[str, int]] = {kind: {} for kind in self.KINDS}
        self.seconds: dict[str, list[float]] = {kind: [] for kind in self.KINDS}
        self.errors: dict[str, int] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(CYCLE_CAP_S + 10)

    async def _main(self) -> None:
        await asyncio.gather(*(self._cycle(i) for i in range(self.count)))

    async def _cycle(self, index: int) -> None:
        kind = self.KINDS[index % 3]
        await asyncio.sleep(index * 0.2)  # spread the starts
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                outcome = await (self._stream() if kind == "stream" else self._trickle(kind))
            except OSError as exc:
                name = type(exc).__name__
                self.errors[name] = self.errors.get(name, 0) + 1
                await asyncio.sleep(1)
                continue
            if outcome is None:  # stopping
                return
            counts = self.outcomes[kind]
            counts[outcome] = counts.get(outcome, 0) + 1
            if outcome != "not cut":
                self.seconds[kind].append(round(time.monotonic() - started, 1))

    async def _trickle(self, kind: str) -> str | None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            if kind == "head":
                writer.write(SLOW_HEAD)
            else:
                writer.write(
                    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 2000\r\n\r\n{"
                )
            answer = asyncio.ensure_future(reader.read(65536))
            deadline = time.monotonic() + CYCLE_CAP_S
            while not answer.done():
                if self._stopping.is_set():
                    answer.cancel()
                    return None
                if time.monotonic() > deadline:
                    answer.cancel()
                    return "not cut"
                with contextlib.suppress(OSError):
                    writer.write(b"a")
                await asyncio.wait([answer], timeout=1.0)
            try:
                data = answer.result()
            except ConnectionResetError:
                return "reset"
            if data.startswith(b"HTTP/1.1 "):
                return data[9:12].decode()
            return "close"
        finally:
            writer.transport.abort()

    async def _stream(self) -> str | None:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", self.port))
            body = b'{"model":"auto","stream":true,"messages":[{"role":"user","content":"hi"}]}'
            request = (
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
            ) % (len(body), body)
            await loop.sock_sendall(sock, request * self.pipeline)
            poller = select.poll()
            poller.register(sock, select.POLLHUP | select.POLLERR)
            mine = sock.getsockname()[1]
            deadline = time.monotonic() + CYCLE_CAP_S
            while True:
                if poller.poll(0):
                    return "reset"  # the server aborted (write or idle timeout, RST)
                if _server_side_state(self.port, mine) != "01":
                    # The server closed its end: its FIN waits behind the unread answers,
                    # so only the kernel's table shows it, not this socket.
                    return "close"
                if self._stopping.is_set():
                    return None
                if time.monotonic() > deadline:
                    return "not cut"
                await asyncio.sleep(1.0)
        finally:
            sock.close()

    def summary(self) -> dict[str, Any]:
        def stats(values: list[float]) -> dict[str, float]:
            values = sorted(values)
            if not values:
                return {}
            return {"min": values[0], "median": values[len(values) // 2], "max": values[-1]}

        return {
            "clients": self.count,
            "stream_pipeline": self.pipeline,
            "outcomes": self.outcomes,
            "seconds_to_cut": {kind: stats(v) for kind, v in self.seconds.items()},
            "client_errors": self.errors,
        }


def phase_latency(dump: bytes, split_unix: float) -> dict[str, dict[str, float]]:
    """p50/p99 (ms, send to end, answered requests) of the live traffic before and after
    ``split_unix``, from a ``bench.loadgen --dump`` file."""
    data = orjson.loads(dump)
    split = split_unix - data["start_unix"]
    phases: dict[str, list[float]] = {"before": [], "after": []}
    errors = {"before": 0, "after": 0}
    for intended, sent, _first, end, _status, ok in data["samples"]:
        phase = "before" if intended < split else "after"
        if ok:
            phases[phase].append(end - sent)
        else:
            errors[phase] += 1
    out = {}
    for phase, values in phases.items():
        values.sort()
        out[phase] = {
            "requests": len(values) + errors[phase],
            "errors": errors[phase],
            "p50_ms": round(percentile(values, 0.5) * 1000, 3),
            "p99_ms": round(percentile(values, 0.99) * 1000, 3),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    """Run the soak and print RSS samples (MB) and the load generator's summary."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--config", default="crossroads-heuristic")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=30.0)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--cpu-sut", default="1")
    parser.add_argument("--cpu-aux", default="0")
    parser.add_argument("--slow-clients", type=int, default=0, help="slowloris-style clients")
    parser.add_argument(
        "--baseline-minutes", type=float, default=2.0, help="with --slow-clients: minutes before"
    )
    parser.add_argument(
        "--stream-pipeline", type=int, default=32, help="requests per stream client"
    )
    args = parser.parse_args(argv)
    seconds = args.minutes * 60
    upstream = start_fake_upstream(args.cpu_aux, 8, seconds + 300)
    service = crossroads_service(args.config, upstream.url, args.cpu_sut)
    samples: list[tuple[float, float]] = []
    slow: SlowClients | None = None
    split_unix = split_at = 0.0
    dump = OUT / f"soak-samples-{time.strftime('%Y%m%d-%H%M%S')}.json"
    try:
        service.start(timeout=60)
        samples.append((0.0, rss_mb(service.pid)))
        load = [*open_load(service.url, args.rate, seconds, warmup=0), "--dump", str(dump)]
        if args.stream:
            load.append("--stream")
        cmd = pinned([sys.executable, "-m", "bench.loadgen", *load], args.cpu_aux)
        loadgen = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE)
        start = time.monotonic()
        if args.slow_clients:
            split_at = args.baseline_minutes * 60
            port = int(service.url.rsplit(":", 1)[1].split("/", 1)[0])
            slow = SlowClients(port, args.slow_clients, args.stream_pipeline)
        while loadgen.poll() is None and time.monotonic() - start < seconds + 120:
            step = args.every
            if slow is not None and split_unix == 0.0:
                step = min(step, max(0.0, start + split_at - time.monotonic()))
            time.sleep(step)
            if slow is not None and split_unix == 0.0 and time.monotonic() - start >= split_at:
                split_unix = time.time()
                slow.start()
                print(f"t={time.monotonic() - start:>5.0f}s {args.slow_clients} slow clients on")
                continue
            samples.append((round(time.monotonic() - start), rss_mb(service.pid)))
            print(f"t={samples[-1][0]:>5.0f}s rss={samples[-1][1]} MB", flush=True)
        if slow is not None:
            slow.stop()
        out, _ = loadgen.communicate(timeout=120)
        summary = orjson.loads(out.splitlines()[-1])
    finally:
        service.stop()
        upstream.stop()
    after_first_minute = [rss for t, rss in samples if t >= 60] or [samples[-1][1]]
    result = {
        "config": args.config,
        "rate": args.rate,
        "minutes": args.minutes,
        "stream": args.stream,
        "rss_mb": samples,
        "growth_after_first_minute_mb": round(after_first_minute[-1] - after_first_minute[0], 1),
        "requests": summary["requests"],
        "errors": summary["errors"],
        "latency_ms": summary["latency_ms"],
    }
    if slow is not None:
        during = [rss for t, rss in samples if t >= split_at + 60] or [samples[-1][1]]
        result["slow_clients"] = slow.summary()
        result["slow_from_s"] = split_at
        result["growth_with_slow_clients_after_their_first_minute_mb"] = round(
            during[-1] - during[0], 1
        )
        result["live_by_phase"] = phase_latency(dump.read_bytes(), split_unix)
        assert service.log is not None
        log = service.log.read_text(errors="replace")
        result["server_log_write_timeout_drops"] = log.count("stopped reading")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (OUT / f"soak-{stamp}.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
