"""CLI commands of the offline path: ``crossroads eval``, ``simulate``, ``fit``, ``calibrate``.

Each is a thin wrapper over a library function (``evaluate``/``write_report``, ``fit_artifact``,
``calibrate_artifact``). numpy, pandas, sklearn and onnxruntime are imported inside the
commands only, so ``crossroads --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def _split_names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    import ast

    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"--param expects key=value, got {pair!r}")
        try:
            params[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            params[key] = raw
    return params


def _window(name: str) -> Any:
    from crossroads.embeddings.embedder import WINDOWS

    if name not in WINDOWS:
        raise typer.BadParameter(f"--window must be one of {', '.join(WINDOWS)}; got {name!r}")
    return name


_WINDOW_HELP = (
    "What the encoder reads of prompts longer than its 256 tokens: head_tail (first 64 and "
    "last 192 tokens), head or tail."
)


def fit_artifact(
    data: Path,
    router_name: str,
    out: Path,
    *,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    include_val: bool = False,
    window: str = "head_tail",
) -> Path:
    """Fit ``router_name`` on the dataset's train split (plus val if asked) and save it;
    ``window`` is what the encoder reads of long prompts (the gateway reads them alike)."""
    import time

    from crossroads.eval.datasets import features_for, load_dataset, split_indices
    from crossroads.routers import make, save

    ds = load_dataset(data)
    features, kind = features_for(ds, progress=True, window=_window(window))
    split = split_indices(ds, seed=seed)
    rows = split["train"]
    if include_val:
        import numpy as np

        rows = np.sort(np.concatenate([rows, split["val"]]))
    router = make(router_name, **(params or {}))
    started = time.perf_counter()
    router.fit(features[rows], ds.outcomes.subset(rows))
    meta = {
        "dataset": ds.name,
        "data_path": str(data),
        "features": kind,
        "fit_split": "train+val" if include_val else "train",
        "seed": seed,
        "n_prompts": int(len(rows)),
        "fit_seconds": round(time.perf_counter() - started, 3),
        "cost_unit": ds.cost_unit,
        "cost_note": ds.cost_note,
        "window": window,
    }
    return save(router, out, name=router_name, meta=meta)


def calibrate_artifact(
    artifact: Path, target: str, *, data: Path | None = None, split: str = "val", seed: int = 0
) -> dict[str, Any]:
    """Calibrate a saved router on ``split`` of its dataset and store the result in it."""
    from crossroads.eval.calibrate import calibrate
    from crossroads.eval.datasets import features_for, load_dataset, split_indices
    from crossroads.routers import load_artifact, save

    payload = load_artifact(artifact)
    meta = payload["meta"]
    if split == "test":
        raise typer.BadParameter(
            "calibrating on the test split would leak it into the router; use val (default)"
        )
    if split == "val" and meta.get("fit_split") == "train+val":
        raise typer.BadParameter(
            "this artifact was fitted on train+val: calibrate it on other data"
        )
    ds = load_dataset(data or meta["data_path"])
    features, _ = features_for(ds, window=_window(meta.get("window", "head")))
    rows = split_indices(ds, seed=int(meta.get("seed", seed)))[split]
    result = calibrate(
        payload["router"], features[rows], ds.outcomes.subset(rows), target, split=split
    )
    result["dataset"] = ds.name
    save(payload["router"], artifact, name=payload["router_name"], calibration=result, meta=meta)
    return result


def open_traces(spec: str) -> Any:
    """The trace store a ``--traces`` option names: a store spec (``sqlite:///path``,
    ``postgresql://...``) or the path of a SQLite trace file."""
    from crossroads.store import open_trace_store

    if "://" not in spec and spec not in ("sqlite", "memory", "none"):
        if not Path(spec).is_file():
            raise typer.BadParameter(f"no trace file {spec}: give a path or a store URL")
        spec = f"sqlite:///{spec}"
    return open_trace_store(spec)


def register(app: typer.Typer) -> None:
    """Add the ``eval``, ``fit``, ``calibrate``, ``dataset export`` and ``promote``
    commands to ``app``."""
    dataset = typer.Typer(help="Routing datasets made from the gateway's traces.")
    app.add_typer(dataset, name="dataset")

    @dataset.command("export")
    def dataset_export_command(
        traces: Annotated[
            str, typer.Option(help="Trace store: a SQLite file, sqlite:///path or postgresql://...")
        ],
        out: Annotated[Path, typer.Option(help="Dataset folder to write.")],
        source: Annotated[
            str | None,
            typer.Option(help="Only feedback from this source (default: all, averaged)."),
        ] = None,
        since: Annotated[
            str | None, typer.Option(help="Traces from this day (YYYY-MM-DD, UTC) or unix time.")
        ] = None,
        until: Annotated[
            str | None, typer.Option(help="Traces before this day (YYYY-MM-DD, UTC) or unix time.")
        ] = None,
    ) -> None:
        """Write the traces that have feedback as a routing dataset (routing.parquet,
        models.json) for crossroads fit and eval."""
        import json

        from crossroads.eval.export import export_dataset
        from crossroads.store.spend import parse_day

        store = open_traces(traces)
        try:
            meta = export_dataset(
                store,
                out,
                since=parse_day(since, "--since") if since else None,
                until=parse_day(until, "--until") if until else None,
                source=source,
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        typer.echo(json.dumps(meta, indent=2))
        typer.echo(f"wrote {out}")

    @app.command("promote")
    def promote_command(
        traces: Annotated[
            str, typer.Option(help="Trace store: a SQLite file, sqlite:///path or postgresql://...")
        ],
        live: Annotated[
            Path,
            typer.Option(help="The symbolic link selection.router names (switched on success)."),
        ],
        candidate: Annotated[Path, typer.Option(help="The candidate router artifact.")],
        confidence: Annotated[
            float, typer.Option(help="Required confidence that the candidate is better.")
        ] = 0.95,
        decision: Annotated[str | None, typer.Option(help="Only traces of this decision.")] = None,
        source: Annotated[
            str | None, typer.Option(help="Only feedback from this source (default: all).")
        ] = None,
        min_matched: Annotated[
            int,
            typer.Option(
                help="Traces where the candidate agrees with the logged choice, at least."
            ),
        ] = 30,
        dry_run: Annotated[bool, typer.Option(help="Compare, but switch nothing.")] = False,
    ) -> None:
        """Switch LIVE to CANDIDATE only if logged traffic shows, off-policy (SNIPS with a
        bootstrap bound), that it earns more reward with CONFIDENCE. Exit 0 promoted,
        3 kept."""
        from crossroads.eval.promote import promote
        from crossroads.exceptions import CrossroadsError

        store = open_traces(traces)
        try:
            verdict = promote(
                store.labeled(),
                live,
                candidate,
                confidence=confidence,
                decision=decision,
                source=source,
                min_matched=min_matched,
                dry_run=dry_run,
            )
        except (CrossroadsError, ValueError) as exc:
            typer.secho(str(exc), fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from exc
        typer.echo("\n".join(verdict.lines()))
        if not verdict.promote:
            raise typer.Exit(3)

    @app.command("eval")
    def eval_command(
        data: Annotated[
            list[Path], typer.Option("--data", help="Dataset folder(s) (routing.parquet).")
        ],
        routers: Annotated[
            str, typer.Option(help="Comma-separated router names; default: all built-ins.")
        ] = "",
        out: Annotated[Path, typer.Option(help="Report directory.")] = Path("reports"),
        seed: Annotated[int, typer.Option(help="Seed of splits and bootstrap.")] = 0,
        bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for 95% CIs.")] = 200,
        tune: Annotated[
            bool,
            typer.Option(
                help="Choose hyper-parameters by grid search on the validation split "
                "(fit on train, AIQ on val) before the final fit on train."
            ),
        ] = True,
        window: Annotated[str, typer.Option(help=_WINDOW_HELP)] = "head_tail",
    ) -> None:
        """Fit routers on each dataset's train split, evaluate them and the baselines on its
        test split, and write markdown, JSON, PNG and HTML reports to OUT."""
        from crossroads.eval.report import markdown_table, write_report
        from crossroads.eval.runner import evaluate

        names = _split_names(routers) or None
        results = []
        for path in data:
            result = evaluate(
                path,
                names,
                seed=seed,
                n_boot=bootstrap,
                progress=True,
                tune=tune,
                window=_window(window),
            )
            results.append(result)
            typer.echo(f"\n## {result.dataset} (test split, {result.seconds:.1f} s)\n")
            typer.echo(markdown_table(result))
        page = write_report(results, out)
        typer.echo(f"\nreport: {page}")

    @app.command("simulate")
    def simulate_command(
        data: Annotated[
            list[Path], typer.Option("--data", help="Dataset folder(s) (routing.parquet).")
        ],
        selector: Annotated[
            str, typer.Option(help="Comma-separated online methods: linucb, thompson, ema.")
        ] = "linucb,thompson,ema",
        seed: Annotated[int, typer.Option(help="Seed of the stream order and the noise.")] = 0,
        delay: Annotated[int, typer.Option(help="Feedback arrives this many requests late.")] = 0,
        noise: Annotated[float, typer.Option(help="Std of Gaussian noise on the reward.")] = 0.0,
        missing: Annotated[float, typer.Option(help="Fraction of feedback never sent.")] = 0.0,
        prefix: Annotated[
            float, typer.Option(help="Fraction of the stream the offline routers are fitted on.")
        ] = 0.1,
        lam: Annotated[
            float | None,
            typer.Option("--lambda", help="Reward = quality - lambda*cost (default: see docs)."),
        ] = None,
        routers: Annotated[
            str, typer.Option(help="Offline routers to compare, fitted on the prefix.")
        ] = "linear,knn",
        max_explore: Annotated[float, typer.Option(help="Exploration bound per request.")] = 0.1,
        warm_start: Annotated[
            bool, typer.Option(help="Also run each contextual selector warm-started.")
        ] = True,
        limit: Annotated[int | None, typer.Option(help="Replay only this many requests.")] = None,
        drift: Annotated[
            float,
            typer.Option(help="From mid-stream the prefix's best model loses this quality share."),
        ] = 0.0,
        out: Annotated[Path, typer.Option(help="Report directory.")] = Path("reports/simulate"),
    ) -> None:
        """Replay each dataset as a stream through online selectors and report regret against
        the oracle and the best offline router fitted on a prefix (markdown, JSON, PNG, HTML)."""
        from crossroads.eval.simulate import ONLINE, simulate
        from crossroads.eval.simulate_report import markdown_table, write_report

        methods = tuple(_split_names(selector))
        unknown = [m for m in methods if m not in ONLINE]
        if unknown:
            raise typer.BadParameter(f"unknown selector(s) {unknown}; use {', '.join(ONLINE)}")
        results = []
        for path in data:
            result = simulate(
                path,
                methods,
                seed=seed,
                delay=delay,
                noise=noise,
                missing=missing,
                prefix=prefix,
                lam=lam,
                routers=tuple(_split_names(routers)),
                warm_start=warm_start,
                max_explore=max_explore,
                limit=limit,
                drift=drift,
            )
            results.append(result)
            typer.echo(f"\n## {result.dataset} ({result.seconds:.1f} s, lambda {result.lam:.4g})\n")
            typer.echo(markdown_table(result))
        typer.echo(f"\nreport: {write_report(results, out)}")

    @app.command("fit")
    def fit_command(
        data: Annotated[Path, typer.Option("--data", help="Dataset folder.")],
        router: Annotated[str, typer.Option(help="Registered router name, e.g. knn, mlp, mf.")],
        out: Annotated[Path, typer.Option(help="Artifact file to write.")],
        param: Annotated[
            list[str] | None, typer.Option(help="Router parameter key=value (repeatable).")
        ] = None,
        seed: Annotated[int, typer.Option(help="Seed of the train/val/test split.")] = 0,
        include_val: Annotated[
            bool, typer.Option(help="Also fit on the validation split (then calibrate elsewhere).")
        ] = False,
        window: Annotated[str, typer.Option(help=_WINDOW_HELP)] = "head_tail",
    ) -> None:
        """Fit a router on a dataset's train split and write an artifact."""
        path = fit_artifact(
            data,
            router,
            out,
            params=_parse_params(param or []),
            seed=seed,
            include_val=include_val,
            window=window,
        )
        typer.echo(f"wrote {path}")

    @app.command("fit-verifier")
    def fit_verifier_command(
        data: Annotated[
            Path, typer.Option("--data", help="Dataset folder with responses.parquet.")
        ],
        model: Annotated[str, typer.Option(help="The cheap model whose answers it judges.")],
        strong: Annotated[str, typer.Option(help="The model a rejected answer escalates to.")],
        out: Annotated[Path, typer.Option(help="Artifact file to write.")],
        target: Annotated[
            str,
            typer.Option(
                help="Calibration target of the cascade: quality:0.95 | quality-abs:0.8 | cost-share:0.3"
            ),
        ] = "quality:0.95",
        good_at: Annotated[
            float, typer.Option(help="Score at which an answer counts as good.")
        ] = 0.5,
        tasks: Annotated[
            str | None, typer.Option(help="Only prompts whose task starts with this.")
        ] = None,
        embed: Annotated[
            bool, typer.Option(help="Add MiniLM embeddings of prompt and answer.")
        ] = True,
        seed: Annotated[int, typer.Option(help="Seed of the train/val/test split.")] = 0,
    ) -> None:
        """Fit a cascade verifier on stored answers (train split) and calibrate its threshold
        to TARGET on the validation split; use it with {rule: verifier, verifier: OUT}."""
        import json

        from crossroads.eval.cascades import fit_verifier_artifact

        try:
            found = fit_verifier_artifact(
                data,
                model,
                strong,
                out,
                target=target,
                good_at=good_at,
                seed=seed,
                embed=embed,
                tasks=tasks,
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        typer.echo(json.dumps(found, indent=2))
        typer.echo(f"wrote {out}")

    @app.command("eval-cascades")
    def eval_cascades_command(
        data: Annotated[
            Path, typer.Option("--data", help="Dataset folder with responses.parquet.")
        ],
        cheap: Annotated[
            str, typer.Option(help="Cheap model key(s), comma-separated (two: agreement).")
        ],
        strong: Annotated[str, typer.Option(help="The model rejected answers escalate to.")],
        target: Annotated[
            str, typer.Option(help="Calibration target (chosen on val).")
        ] = "quality:0.95",
        tasks: Annotated[
            str | None, typer.Option(help="Only prompts whose task starts with this.")
        ] = None,
        good_at: Annotated[
            float, typer.Option(help="Score at which an answer counts as good.")
        ] = 0.5,
        seed: Annotated[int, typer.Option(help="Seed of the train/val/test split.")] = 0,
        out: Annotated[
            Path | None, typer.Option(help="Write the markdown report here too.")
        ] = None,
    ) -> None:
        """Replay cascades on stored responses and compare them, on the test split, with
        prompt-only routers fitted on the same rows."""
        from crossroads.eval.cascades import evaluate_cascades, report_markdown

        report = evaluate_cascades(
            data,
            _split_names(cheap),
            strong,
            seed=seed,
            good_at=good_at,
            target=target,
            tasks=tasks,
        )
        text = report_markdown(report)
        if out is not None:
            out.write_text(text)
        typer.echo(text)

    @app.command("calibrate")
    def calibrate_command(
        artifact: Annotated[
            Path,
            typer.Argument(
                help="Router artifact from `crossroads fit`, or a config YAML whose decision "
                "runs a cascade plan."
            ),
        ],
        target: Annotated[
            str, typer.Option(help="quality:0.95 | quality-abs:0.8 | cost-share:0.3")
        ],
        data: Annotated[
            Path | None,
            typer.Option(
                help="Dataset folder (default: the one it was fitted on; a plan needs one "
                "with responses.parquet)."
            ),
        ] = None,
        split: Annotated[str, typer.Option(help="Held-out split to calibrate on.")] = "val",
        decision: Annotated[
            str | None, typer.Option(help="Plan: the decision whose cascade to calibrate.")
        ] = None,
        model: Annotated[
            list[str] | None,
            typer.Option(
                help="Plan: config model name=dataset model key (repeatable; default: the "
                "model's upstream_model, else its name)."
            ),
        ] = None,
        tasks: Annotated[
            str | None, typer.Option(help="Plan: only prompts whose task starts with this.")
        ] = None,
        seed: Annotated[int, typer.Option(help="Plan: seed of the train/val/test split.")] = 0,
        write: Annotated[
            bool,
            typer.Option(
                help="Plan: write the calibrated plan into the config file (YAML comments "
                "are not kept); default: print the snippet to paste."
            ),
        ] = False,
    ) -> None:
        """Choose lambda/tau meeting TARGET on held-out data and store them in a router
        artifact; or, for a config, choose its cascade's thresholds on the stored responses
        of DATA's validation split, report them on its test split, and print the plan."""
        import json

        if artifact.suffix in (".yaml", ".yml"):
            if data is None:
                raise typer.BadParameter(
                    "calibrating a plan needs --data: a dataset with responses"
                )
            from crossroads.eval.calibrate import calibrate_plan

            pairs = dict(p.partition("=")[::2] for p in model or [])
            try:
                result = calibrate_plan(
                    artifact,
                    data,
                    target,
                    decision=decision,
                    model_map=pairs,
                    tasks=tasks,
                    split=split,
                    seed=seed,
                )
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from exc
            typer.echo(json.dumps({k: v for k, v in result.items() if k != "plan"}, indent=2))
            if write:
                write_plan(artifact, result["decision"], result["plan"])
                typer.echo(f"wrote the calibrated plan of {result['decision']} into {artifact}")
            else:
                import yaml

                typer.echo(f"\n# decision {result['decision']}:")
                typer.echo(yaml.safe_dump(result["plan"], sort_keys=False))
            return
        try:
            result = calibrate_artifact(artifact, target, data=data, split=split)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        typer.echo(json.dumps(result, indent=2))


def write_plan(config: Path, decision: str, plan: dict[str, Any]) -> None:
    """Replace ``decision``'s plan (``{"plan": ...}`` or ``{"plan.then": ...}``) in the
    config file, keeping the rest of its YAML as written (but not its comments)."""
    import yaml

    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    owners = [d for d in raw.get("decisions") or [] if d.get("name") == decision]
    default = raw.get("default")
    if not owners and isinstance(default, dict) and default.get("name", "default") == decision:
        owners = [default]
    if not owners:
        raise typer.BadParameter(f"decision {decision!r} is not in {config}")
    ((where, value),) = plan.items()
    if where == "plan":
        owners[0]["plan"] = value
    else:
        owners[0]["plan"]["then"] = value
    config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
