"""Per-request cost of authentication: a configured key against a virtual key from the store.

    python -m bench.auth --keys 10000 [--postgres postgresql://postgres@127.0.0.1/test]

Starts a gateway in process with one configured key and ``--keys`` virtual keys (SQLite in a
temporary directory, and PostgreSQL in a throwaway schema when ``--postgres`` is given), then
times what a request pays before routing: the revision check :meth:`Gateway._http` makes and
:meth:`Gateway._caller` (read the headers, hash the key, find it, build the caller). It also
times the refresh a replica makes after one key changed (off the event loop, in a thread).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from crossroads.config import parse_config
from crossroads.gateway import create_app
from crossroads.gateway.app import Gateway, Unauthorized
from crossroads.store.memory import MemoryTraceStore

CONFIG_KEY = "config-key-" + "x" * 40
HEADERS = [
    (b"host", b"127.0.0.1:8400"),
    (b"content-type", b"application/json"),
    (b"user-agent", b"OpenAI/Python 1.0"),
    (b"accept", b"application/json"),
]


def gateway(key_spec: str | None, config_key: bool = True) -> Gateway:
    """A started gateway: a configured key unless ``config_key`` is false, virtual keys from
    ``key_spec`` when given."""
    os.environ["BENCH_CONFIG_KEY"] = CONFIG_KEY
    data: dict[str, Any] = {
        "upstreams": [{"name": "u", "base_url": "http://127.0.0.1:9/v1"}],
        "models": [{"name": "small", "upstream": "u"}],
        "default": {"models": ["small"]},
        "teams": [{"name": "platform"}],
        "store": {"traces": "memory", "keys": key_spec},
        "server": {
            "api_keys": [{"name": "ops", "key_env": "BENCH_CONFIG_KEY", "team": "platform"}]
        },
    }
    if key_spec is None:
        del data["store"]["keys"]
    if not config_key:
        del data["server"]
    app = create_app(parse_config(data), store=MemoryTraceStore())
    asyncio.run(app.startup())
    return app


def per_request_ns(app: Gateway, token: str | None, n: int, repeats: int = 7) -> float:
    """The best over ``repeats`` of the mean nanoseconds of one revision check + caller (the
    minimum: the machine is shared, and other work only ever adds time)."""
    auth = [(b"authorization", f"Bearer {token}".encode())] if token else []
    scope = {"headers": HEADERS + auth}
    ring = app.key_ring
    results = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(n):
            if ring is not None and ring.stale():
                raise RuntimeError("the ring went stale during the benchmark")
            with contextlib.suppress(Unauthorized):
                app._caller(scope)
        results.append((time.perf_counter_ns() - start) / n)
    return min(results)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def run_store(label: str, spec: str, keys: int, n: int) -> list[tuple[str, float]]:
    from crossroads.keys import open_key_store

    store = open_key_store(spec)
    store.start()
    made = timed(
        lambda: [
            store.create_key(f"k{i}", "platform", config_teams={"platform"})
            for i in range(keys - 1)
        ]
    )
    last = store.create_key("last", "platform", {"rpm": 100}, config_teams={"platform"})
    print(f"{label}: created {keys} keys in {made / 1000:.1f} s")
    app = gateway(spec)
    ring = app.key_ring
    assert ring is not None
    load = timed(lambda: ring.store.changes(-1))
    rows = [
        (f"{label}: virtual key ({keys} in store)", per_request_ns(app, last.secret, n)),
        (
            f"{label}: configured key, store on",
            per_request_ns(app, CONFIG_KEY, n),
        ),
        (f"{label}: unknown key (401)", per_request_ns(app, "cr-" + "y" * 43, n, 3)),
    ]
    store.rotate_key("last")
    assert ring.stale()
    refresh = timed(ring.refresh)  # what catch_up runs in a worker thread, once per change
    assert not ring.stale()
    print(
        f"{label}: full load of {keys} keys {load:.1f} ms; refresh after one rotation {refresh:.2f} ms"
    )
    asyncio.run(app.shutdown())
    store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=10_000, help="virtual keys in the store")
    parser.add_argument("--requests", type=int, default=100_000, help="timed calls per case")
    parser.add_argument("--postgres", help="a PostgreSQL URL: time its key store too")
    args = parser.parse_args()
    rows = []
    for label, app, token in (
        ("no keys at all (open gateway)", gateway(None, config_key=False), None),
        ("configured key, no key store", gateway(None), CONFIG_KEY),
    ):
        rows.append((label, per_request_ns(app, token, args.requests)))
        asyncio.run(app.shutdown())
    with tempfile.TemporaryDirectory() as tmp:
        rows += run_store("sqlite", f"sqlite:///{tmp}/keys.db", args.keys, args.requests)
    if args.postgres:
        import psycopg

        from tests.support.postgres import with_schema

        schema = f"crossroads_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            rows += run_store(
                "postgresql", with_schema(args.postgres, schema), args.keys, args.requests
            )
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    print("\n| auth path per request | µs |\n|---|---|")
    for label, ns in rows:
        print(f"| {label} | {ns / 1000:.2f} |")


if __name__ == "__main__":
    main()
