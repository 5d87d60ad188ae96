"""Labelled data for the learned signals, assembled from the routing datasets and from
examples written for crossroads (``crossroads/signals/data/``).

Every example has a split fixed before training: routing-dataset rows keep the split the
router evaluation uses (:func:`crossroads.eval.datasets.split_indices`, seed 0), written
examples go by a hash of their group (a template's examples share one), and a text that
occurs in several places takes the most held-out of its splits, so no test text is trained on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from crossroads.exceptions import CrossroadsError

Split = str  # "train" | "val" | "test"
DOMAIN_LABELS = [
    "code",
    "math",
    "reasoning",
    "knowledge",
    "writing",
    "chat",
    "translation",
    "extraction",
    "other",
]
_RANK = {"train": 0, "val": 1, "test": 2}


@dataclass(slots=True)
class Example:
    """One labelled text: ``label`` is a class name, or a number in [0, 1] for complexity."""

    text: str
    label: Any
    source: str
    split: Split


def hash_split(key: str, val: float = 0.15, test: float = 0.15) -> Split:
    """A fixed split for ``key`` (a text or a group name): sha1-uniform."""
    u = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if u < test else "val" if u < test + val else "train"


def deduplicated(examples: Iterable[Example]) -> list[Example]:
    """One example per text: the first label, the most held-out split."""
    kept: dict[str, Example] = {}
    for ex in examples:
        key = " ".join(ex.text.split()).lower()
        if not key:
            continue
        seen = kept.get(key)
        if seen is None:
            kept[key] = ex
        elif _RANK[ex.split] > _RANK[seen.split]:
            seen.split = ex.split
    return list(kept.values())


def _data_file(name: str) -> Path:
    return Path(str(resources.files("crossroads.signals").joinpath("data", name)))


def _tsv_rows(path: Path) -> Iterator[list[str]]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            yield [part.replace("\\n", "\n") for part in line.split("\t")]


def _routing(shared: Path, name: str) -> tuple[Any, dict[str, Any]] | None:
    """A routing dataset and its split per row, or None when it is not there."""
    from crossroads.eval.datasets import load_dataset, split_indices

    path = shared / name
    if not (path / "routing.parquet").is_file():
        return None
    ds = load_dataset(path)
    split = ["train"] * len(ds)
    for part, rows in split_indices(ds, seed=0).items():
        for i in rows:
            split[int(i)] = part
    return ds, {"split": split}


def _capped(rows: list[int], cap: int, seed: str) -> list[int]:
    # A fixed, seed-named sample: the same rows on every machine.
    order = sorted(rows, key=lambda i: hashlib.sha1(f"{seed}:{i}".encode()).hexdigest())
    return sorted(order[:cap])


# ---- domain -------------------------------------------------------------------------

_MMLU_MATH = {
    "elementary_mathematics",
    "high_school_mathematics",
    "college_mathematics",
    "abstract_algebra",
    "high_school_statistics",
}
_MMLU_REASONING = {"formal_logic", "logical_fallacies"}
_MT_BENCH = {
    "writing": "writing",
    "roleplay": "writing",
    "reasoning": "reasoning",
    "math": "math",
    "coding": "code",
    "extraction": "extraction",
    "stem": "knowledge",
    "humanities": "knowledge",
}
_ARENA_PREFIX = [
    (("MMLUPro_math", "MathQA", "AsDiv", "MATH", "AIME", "GSM8K", "FinQA"), "math"),
    (("LiveCodeBench",), "code"),
    (("WMT19",), "translation"),
    (("NarrativeQA", "SuperGLUE-RC"), "extraction"),
    (
        (
            "SuperGLUE-Causal",
            "SuperGLUE-Wsc",
            "SuperGLUE-Entailment",
            "SuperGLUE-Wic",
            "SuperGLUE-Cloze",
            "SocialiQA",
            "Ethics",
            "MMLU_formal_logic",
            "ChessInstruct",
        ),
        "reasoning",
    ),
]


def _domain_of(dataset: str, task: str) -> str | None:
    """The domain label of a routing-dataset task (None: not used)."""
    if dataset == "routellm-evals":
        if task == "gsm8k":
            return "math"
        if task.startswith("mt-bench-"):
            return _MT_BENCH.get(task.removeprefix("mt-bench-"))
        subject = task.removeprefix("mmlu-")
        if subject in _MMLU_MATH:
            return "math"
        return "reasoning" if subject in _MMLU_REASONING else "knowledge"
    if dataset == "routerdc-7model":
        # mmlu comes from routellm-evals with its subjects; cmmlu/ceval are Chinese, which
        # the English MiniLM encoder cannot read.
        return {
            "gsm8k": "math",
            "math-prealgebra": "math",
            "humaneval": "code",
            "humaneval-js": "code",
            "arc-easy": "knowledge",
        }.get(task)
    if dataset == "routerarena-sub10":
        for prefixes, label in _ARENA_PREFIX:
            if task.startswith(prefixes):
                return label
        return "knowledge"
    return None


def domain_examples(shared: Path, *, cap: int = 400) -> list[Example]:
    """The built-in domain corpus: routing-dataset tasks mapped to labels (at most ``cap``
    per dataset and label), the hand-labelled AlpacaEval instructions, written examples."""
    out: list[Example] = []
    for name in ("routellm-evals", "routerdc-7model", "routerarena-sub10"):
        loaded = _routing(shared, name)
        if loaded is None:
            continue
        ds, extra = loaded
        by_label: dict[str, list[int]] = {}
        for i, task in enumerate(ds.tasks):
            label = _domain_of(name, str(task))
            if label is not None:
                by_label.setdefault(label, []).append(i)
        for label, rows in sorted(by_label.items()):
            for i in _capped(rows, cap, f"{name}:{label}"):
                out.append(Example(ds.prompts[i], label, name, extra["split"][i]))
    loaded = _routing(shared, "alpacaeval2")
    if loaded is not None:
        ds, extra = loaded
        labels = dict(_tsv_rows(_data_file("alpacaeval_domains.tsv")))
        for i, pid in enumerate(ds.prompt_ids):
            if pid in labels:
                out.append(Example(ds.prompts[i], labels[pid], "alpacaeval2", extra["split"][i]))
    if not out:
        raise CrossroadsError(
            f"no routing datasets under {shared}: point --shared at the folder holding "
            "routellm-evals, routerdc-7model, routerarena-sub10 and alpacaeval2"
        )
    for label, text in _tsv_rows(_data_file("domain_curated.tsv")):
        out.append(Example(text, label, "curated", hash_split(text)))
    return deduplicated(out)


# ---- complexity ---------------------------------------------------------------------

# Per dataset: the small models whose failure the head predicts, and how many rows to use.
# AlpacaEval is left out: its scores are preferences against GPT-4 Turbo, which a small
# model loses on nearly every open-ended prompt, easy or not; that is not failure.
SMALL_MODELS: dict[str, tuple[tuple[str, ...] | None, int]] = {
    "routerdc-7model": (None, 3500),  # all seven 7-8B models
    "routellm-evals": (("mistralai--mixtral-8x7b-instruct-v0.1",), 2000),
    "routerarena-sub10": (("claude-3-haiku-20240307",), 1000),
}


def complexity_examples(shared: Path) -> list[Example]:
    """Prompts labelled with 1 − the mean score of the dataset's small models."""
    import numpy as np

    out: list[Example] = []
    for name, (models, cap) in SMALL_MODELS.items():
        loaded = _routing(shared, name)
        if loaded is None:
            continue
        ds, extra = loaded
        keys = list(ds.outcomes.models)
        cols = [keys.index(m) for m in models] if models else list(range(len(keys)))
        quality = ds.outcomes.quality[:, cols]
        rows = [
            i
            for i in range(len(ds))
            if not np.isnan(quality[i]).all() and str(ds.tasks[i]) not in {"cmmlu", "ceval"}
        ]
        for i in _capped(rows, cap, f"complexity:{name}"):
            fail = 1.0 - float(np.nanmean(quality[i]))
            out.append(Example(ds.prompts[i], min(1.0, max(0.0, fail)), name, extra["split"][i]))
    if not out:
        raise CrossroadsError(f"no routing datasets with small-model scores under {shared}")
    return deduplicated(out)


# ---- jailbreak ----------------------------------------------------------------------


def jailbreak_examples(shared: Path, *, benign_per_dataset: int = 300) -> list[Example]:
    """Written attacks (hand-written and wrapper × goal) against written hard negatives and
    benign prompts of the routing datasets and the domain examples."""
    out: list[Example] = []
    for label, style, text in _tsv_rows(_data_file("jailbreak_curated.tsv")):
        out.append(Example(text, int(label), f"curated-{style}", hash_split(text)))
    templates = json.loads(_data_file("jailbreak_templates.json").read_text(encoding="utf-8"))
    for wid, wrapper in templates["wrappers"].items():
        split = hash_split(wid, val=0.2, test=0.25)
        for goal in templates["goals"]:
            text = wrapper.replace("{goal}", goal).replace("{Goal}", goal[:1].upper() + goal[1:])
            out.append(Example(text, 1, "template", split))
    for _, text in _tsv_rows(_data_file("domain_curated.tsv")):
        out.append(Example(text, 0, "curated-domain", hash_split(text)))
    attacks_in_data = {"alpacaeval.296"}  # "an imaginary world where AI ... not trained to decline"
    for name in ("alpacaeval2", "routellm-evals", "routerarena-sub10", "routerdc-7model"):
        loaded = _routing(shared, name)
        if loaded is None:
            continue
        ds, extra = loaded
        cap = len(ds) if name == "alpacaeval2" else benign_per_dataset
        for i in _capped(list(range(len(ds))), cap, f"benign:{name}"):
            attack = int(ds.prompt_ids[i] in attacks_in_data)
            out.append(Example(ds.prompts[i], attack, name, extra["split"][i]))
    return deduplicated(out)


def external_jailbreak_examples() -> list[Example]:
    """Openly licensed attack sets from PyPI, for testing only (never trained on):
    ``bastioncorpus`` (MIT) and ``jailbreak-corpus-mini-py`` (MIT), where installed."""
    out: list[Example] = []
    try:
        from bastioncorpus import load_corpus

        for row in load_corpus():
            label = 1 if row.label == "malicious" else 0
            out.append(Example(row.text, label, f"bastioncorpus-{row.category}", "test"))
    except ImportError:
        pass
    try:
        path = resources.files("jailbreak_corpus_mini").joinpath("corpus.json")
        for row in json.loads(path.read_text(encoding="utf-8")):
            out.append(Example(row["prompt"], 1, "jailbreak-corpus-mini", "test"))
    except (ImportError, ModuleNotFoundError, FileNotFoundError):
        pass
    return out


# ---- user data ----------------------------------------------------------------------


def read_labelled(path: Path, parse: Callable[[str], Any] = str) -> list[Example]:
    """``text``/``label`` rows from a JSONL, CSV or TSV file (an optional ``split`` column
    fixes the split; otherwise a hash of the text does)."""
    import csv

    if not path.is_file():
        raise CrossroadsError(f"no labelled data at {path}: give a .jsonl, .csv or .tsv file")
    if path.suffix == ".jsonl":
        lines = path.read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
    else:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ","))
    out = []
    for n, row in enumerate(rows, 1):
        if "text" not in row or "label" not in row:
            raise CrossroadsError(f"{path} row {n}: every row needs 'text' and 'label'")
        split = row.get("split") or hash_split(str(row["text"]))
        if split not in _RANK:
            raise CrossroadsError(f"{path} row {n}: split {split!r} is not train, val or test")
        out.append(Example(str(row["text"]), parse(row["label"]), path.name, split))
    return deduplicated(out)
