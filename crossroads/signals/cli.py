"""``crossroads signals train``: train a learned signal's head and report on held-out data.

:func:`train_signal` is the library function; the command only parses arguments. numpy,
scikit-learn and the encoder load inside it, so ``crossroads --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from crossroads.exceptions import CrossroadsError

Kind = Literal["domain", "complexity", "jailbreak"]

# The scoped ood check: a policy whose decisions cover code and math only.
OOD_SCOPED_EXEMPLARS = {
    "code": [
        "write a python function that parses a csv file",
        "why does my javascript promise never resolve",
        "fix this segmentation fault in my C program",
        "write a SQL query joining two tables",
        "refactor this class to use dependency injection",
    ],
    "math": [
        "solve this quadratic equation",
        "what is the integral of x squared",
        "a word problem about trains and speeds",
        "prove that the sum of two even numbers is even",
        "compute the probability of drawing two aces",
    ],
}


def train_signal(
    kind: Kind,
    out: Path,
    *,
    data: Path | None = None,
    shared: Path = Path("../shared/data"),
    embedder: Any = None,
) -> dict[str, Any]:
    """Train the ``kind`` head on ``data`` (your labels) or on the built-in corpus built
    from ``shared`` (the routing datasets); save it to ``out``; return the held-out report."""
    from crossroads.embeddings import EmbeddingCache
    from crossroads.signals import corpora, training

    if kind not in ("domain", "complexity", "jailbreak"):
        raise CrossroadsError(f"unknown signal {kind!r}: train domain, complexity or jailbreak")
    # The data first: a bad file fails before the encoder loads.
    parse = {"domain": str, "complexity": float, "jailbreak": int}[kind]
    if data is not None:
        examples = corpora.read_labelled(data, parse)
    else:
        build = {
            "domain": corpora.domain_examples,
            "complexity": corpora.complexity_examples,
            "jailbreak": corpora.jailbreak_examples,
        }[kind]
        examples = build(shared)
    if embedder is None:
        from crossroads.signals.learned import _encoder

        embedder = _encoder()
    cache = EmbeddingCache("signal-heads", embedder=embedder)

    def embed(texts: list[str]) -> Any:
        return cache.encode(texts, progress=len(texts) > 2000)

    report: dict[str, Any]
    if kind == "domain":
        head, report = training.train_domain(examples, embed)
        if data is None:
            ood = [t for (t,) in corpora._tsv_rows(corpora._data_file("ood_eval.tsv"))]
            test = [e for e in examples if e.split == "test"]
            report["ood"] = training.evaluate_ood(head, test, embed, ood, OOD_SCOPED_EXEMPLARS)
    elif kind == "complexity":
        head, report = training.train_complexity(examples, embed)
    else:
        external = corpora.external_jailbreak_examples()
        head, report = training.train_jailbreak(examples, embed, external)
    head.meta["data"] = str(data) if data else "built-in corpus"
    report["saved"] = str(head.save(out))
    return report


def register(app: typer.Typer) -> None:
    """Add the ``signals`` command group to the ``crossroads`` app."""
    signals = typer.Typer(
        help="Learned signals: train their heads on your data.", no_args_is_help=True
    )

    @signals.command("train")
    def train(
        kind: Annotated[str, typer.Argument(help="domain, complexity or jailbreak.")],
        data: Annotated[
            Path | None,  # noqa: UP007
            typer.Option(help="Your labels: .jsonl/.csv/.tsv with text, label (and split)."),
        ] = None,
        shared: Annotated[
            Path, typer.Option(help="The routing datasets (for the built-in corpus).")
        ] = Path("../shared/data"),
        out: Annotated[
            Path | None, typer.Option(help="Where to write the head (default: ./<kind>.npz).")  # noqa: UP007
        ] = None,
        report: Annotated[
            Path | None, typer.Option(help="Also write the report as JSON here.")  # noqa: UP007
        ] = None,
    ) -> None:
        """Train a learned signal's head; print its held-out (test split) report."""
        if kind not in ("domain", "complexity", "jailbreak"):
            raise typer.BadParameter(
                f"{kind!r}: use domain, complexity or jailbreak", param_hint="KIND"
            )
        target = out or Path(f"{kind}.npz")
        try:
            result = train_signal(kind, target, data=data, shared=shared)  # type: ignore[arg-type]
        except CrossroadsError as exc:
            typer.secho(str(exc), fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from exc
        text = json.dumps(result, indent=2)
        if report:
            report.write_text(text + "\n")
        typer.echo(text)
        typer.echo(f"use it with: signals: [{{kind: {kind}, name: ..., model: {target}}}]")

    app.add_typer(signals, name="signals")
