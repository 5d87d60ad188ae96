"""Run TensorZero's gateway as a benchmark target; runs in ``bench/.venv-tensorzero``.

PyPI has no standalone TensorZero gateway binary: the ``tensorzero`` wheel embeds the
Rust gateway in its extension module and starts its OpenAI-compatible HTTP server on a
free loopback port (``tensorzero._start_http_gateway``, what ``patch_openai_client`` uses).
This script writes a TensorZero config with one model per fake-upstream model (provider
``type = "openai"``, no key), observability off, starts that server, writes its base URL to
``--ready-file`` and serves until SIGTERM. Only the standard library and ``tensorzero`` are
imported: this file runs in TensorZero's own virtualenv, not crossroads'.

    python bench/tensorzero_gateway.py --upstream http://127.0.0.1:9100/v1 \\
        --models fake-small --config bench/out/tensorzero.toml --ready-file bench/out/tz.url
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path


def render_config(upstream: str, models: list[str]) -> str:
    """A ``tensorzero.toml``: each model routed to the OpenAI-compatible ``upstream``."""
    lines = []
    for model in models:
        # json.dumps gives a valid TOML basic string for these plain values
        lines += [
            f"[models.{json.dumps(model)}]",
            'routing = ["fake"]',
            "",
            f"[models.{json.dumps(model)}.providers.fake]",
            'type = "openai"',
            f"api_base = {json.dumps(upstream)}",
            f"model_name = {json.dumps(model)}",
            'api_key_location = "none"',
            "",
        ]
    lines += ["[gateway.observability]", "enabled = false", ""]
    return "\n".join(lines)


def main() -> None:
    """Start the gateway, announce its URL, wait for SIGTERM or SIGINT, close it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True, help="OpenAI base URL of the upstream")
    parser.add_argument("--models", default="fake-small,fake-large")
    parser.add_argument("--config", type=Path, required=True, help="where to write the TOML")
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args()
    import tensorzero

    args.config.write_text(render_config(args.upstream, args.models.split(",")))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    gateway = tensorzero._start_http_gateway(
        config_file=str(args.config),
        clickhouse_url=None,
        postgres_url=None,
        valkey_url=None,
        async_setup=False,
    )
    try:
        partial = args.ready_file.with_name(args.ready_file.name + ".partial")
        partial.write_text(gateway.base_url)
        partial.replace(args.ready_file)  # the reader never sees half a URL
        stop.wait()
    finally:
        gateway.close()


if __name__ == "__main__":
    main()
