"""``crossroads keys ...`` and ``crossroads teams ...``: the key store from the command line.

They open the store named by the config's ``store.keys`` (``-c``), else ``keys.db`` in the
data dir, and talk to the database directly: no gateway or admin key is needed, and every
running gateway sees the change before its next request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from crossroads.exceptions import CrossroadsError

ConfigOption = Annotated[
    Path | None,  # noqa: UP007 (typer needs Optional)
    typer.Option("--config", "-c", help="Config whose store.keys to use; default: the data dir."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
PolicyOption = Annotated[
    str | None,  # noqa: UP007
    typer.Option("--policy", help="The whole policy as JSON, e.g. '{\"rpm\": 60}'."),
]
ModelsOption = Annotated[
    list[str] | None,  # noqa: UP007
    typer.Option("--model", help="A model or entrypoint it may use (repeat); default: any."),
]
RpmOption = Annotated[int | None, typer.Option(help="Requests per minute.")]  # noqa: UP007
TpmOption = Annotated[int | None, typer.Option(help="Tokens per minute.")]  # noqa: UP007
BudgetOption = Annotated[
    list[str] | None,  # noqa: UP007
    typer.Option("--budget", help="A budget USD/PERIOD, e.g. 5/day or 100/month (repeat)."),
]
MetaOption = Annotated[
    list[str] | None,  # noqa: UP007
    typer.Option("--meta", help="Metadata KEY=VALUE for signals (repeat)."),
]

keys_app = typer.Typer(help="Virtual API keys: create, list, rotate, revoke.", no_args_is_help=True)
teams_app = typer.Typer(help="Teams of virtual keys and their shared policy.", no_args_is_help=True)


def _fail(message: str) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@contextmanager
def _opened(config: Path | None) -> Iterator[tuple[Any, set[str]]]:
    """The key store and the config's team names; a store error exits with its message."""
    from crossroads.keys import open_key_store

    spec, teams = "sqlite", set()
    if config is not None:
        from crossroads.cli import load

        cfg = load(config)
        spec = cfg.store.keys or spec
        teams = {t.name for t in cfg.teams}
    try:
        store = open_key_store(spec)
        store.start()
    except CrossroadsError as exc:
        _fail(str(exc))
    try:
        yield store, teams
    except CrossroadsError as exc:
        _fail(str(exc))
    finally:
        store.close()


def _policy(
    policy: str | None,
    models: list[str] | None,
    rpm: int | None,
    tpm: int | None,
    budgets: list[str] | None,
    meta: list[str] | None,
) -> dict[str, Any]:
    """The policy of ``--policy`` with the single-field options laid over it."""
    try:
        result: dict[str, Any] = json.loads(policy) if policy else {}
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--policy is not JSON: {exc}") from None
    if not isinstance(result, dict):
        raise typer.BadParameter("--policy must be a JSON object")
    for name, given in (("models", models), ("rpm", rpm), ("tpm", tpm)):
        if given:
            result[name] = given
    for text in budgets or []:
        usd, _, period = text.partition("/")
        try:
            result.setdefault("budgets", []).append(
                {"usd": float(usd), "period": period or "month"}
            )
        except ValueError:
            raise typer.BadParameter(f"--budget expects USD/PERIOD, got {text!r}") from None
    for pair in meta or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"--meta expects KEY=VALUE, got {pair!r}")
        result.setdefault("metadata", {})[key] = value
    return result


def _when(stamp: float | None) -> str:
    return "-" if stamp is None else time.strftime("%Y-%m-%d", time.gmtime(stamp))


def _print_keys(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} keys", title_justify="left")
    for col in ("id", "name", "team", "key", "status", "created", "expires"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        table.add_row(
            r["id"], r["name"], r["team"] or "-", r["display"], r["status"],
            _when(r["created_at"]), _when(r["expires_at"]),
        )  # fmt: skip
    Console().print(table)


def _issued(issued: Any, as_json: bool, verb: str) -> None:
    shown = issued.public()
    if as_json:
        typer.echo(json.dumps(shown))
        return
    typer.echo(f"{verb} key {shown['id']} ({shown['name']}). Its value, shown only now:")
    typer.secho(shown["key"], bold=True)


def register(app: typer.Typer) -> None:
    """Add the ``keys`` and ``teams`` groups to ``app``."""
    app.add_typer(keys_app, name="keys")
    app.add_typer(teams_app, name="teams")


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="What traces and spend reports call the key.")],
    config: ConfigOption = None,
    team: Annotated[str | None, typer.Option(help="Its team (store or config).")] = None,  # noqa: UP007
    policy: PolicyOption = None,
    model: ModelsOption = None,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    budget: BudgetOption = None,
    meta: MetaOption = None,
    expires_in_days: Annotated[
        float | None, typer.Option(help="It stops working after this many days.")  # noqa: UP007
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a key; its value is printed once and stored only as a SHA-256 digest."""
    body = _policy(policy, model, rpm, tpm, budget, meta)
    expires = time.time() + expires_in_days * 86400 if expires_in_days else None
    with _opened(config) as (store, teams):
        _issued(store.create_key(name, team, body, expires, config_teams=teams), as_json, "created")


@keys_app.command("list")
def list_keys(
    config: ConfigOption = None,
    include_revoked: Annotated[bool, typer.Option("--all", help="Revoked keys too.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List keys (never their values; ``keys show`` prints a key's policy)."""
    with _opened(config) as (store, _):
        _print_keys([k.public() for k in store.list_keys(include_revoked)], as_json)


@keys_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="Key id or name.")],
    config: ConfigOption = None,
) -> None:
    """Show one key as JSON (never its value)."""
    with _opened(config) as (store, _):
        typer.echo(json.dumps(store.get_key(ref).public(), indent=2))


@keys_app.command("rotate")
def rotate(
    ref: Annotated[str, typer.Argument(help="Key id or name.")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give a key a new value; the old value stops working at once, everywhere."""
    with _opened(config) as (store, _):
        _issued(store.rotate_key(ref), as_json, "rotated")


@keys_app.command("revoke")
def revoke(
    ref: Annotated[str, typer.Argument(help="Key id or name.")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a key: it stops working at once, everywhere."""
    with _opened(config) as (store, _):
        key = store.revoke_key(ref)
        typer.echo(json.dumps(key.public()) if as_json else f"revoked key {key.id} ({key.name})")


@teams_app.command("set")
def set_team(
    name: Annotated[str, typer.Argument(help="The team's name.")],
    config: ConfigOption = None,
    policy: PolicyOption = None,
    model: ModelsOption = None,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    budget: BudgetOption = None,
    meta: MetaOption = None,
) -> None:
    """Create a team or replace its policy (shared by all its keys together)."""
    body = _policy(policy, model, rpm, tpm, budget, meta)
    with _opened(config) as (store, teams):
        if name in teams:
            _fail(f"team {name!r} is declared in the config's teams: edit it there")
        team = store.put_team(name, body)
        typer.echo(f"team {team.name}: {json.dumps(team.policy)}")


@teams_app.command("list")
def list_teams(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List the key store's teams (the config's own teams: are in the config)."""
    with _opened(config) as (store, _):
        rows = [t.public() for t in store.list_teams()]
    _echo_rows(rows, as_json, lambda r: f"{r['name']}\t{json.dumps(r['policy'])}")


@teams_app.command("delete")
def delete_team(
    name: Annotated[str, typer.Argument(help="The team's name.")],
    config: ConfigOption = None,
) -> None:
    """Delete a team that no active key belongs to."""
    with _opened(config) as (store, _):
        store.delete_team(name)
        typer.echo(f"deleted team {name}")


def _echo_rows(rows: list[dict[str, Any]], as_json: bool, line: Callable[[Any], str]) -> None:
    for row in rows:
        typer.echo(json.dumps(row) if as_json else line(row))
