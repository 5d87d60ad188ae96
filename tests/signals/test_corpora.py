from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from crossroads.exceptions import CrossroadsError
from crossroads.signals import corpora
from crossroads.signals.corpora import Example, deduplicated, hash_split, read_labelled

# The routing datasets sit beside the checkout (CI: ../shared; a worktree: ../../shared).
_ROOT = Path(__file__).resolve().parents[2]
SHARED = next(
    (
        p
        for p in (_ROOT.parent / "shared" / "data", _ROOT.parent.parent / "shared" / "data")
        if p.is_dir()
    ),
    _ROOT.parent / "shared" / "data",
)
needs_shared = pytest.mark.skipif(
    not (SHARED / "routellm-evals").is_dir(), reason=f"the routing datasets are not at {SHARED}"
)


def test_hash_split_is_fixed_and_roughly_proportional() -> None:
    splits = Counter(hash_split(f"text {i}") for i in range(4000))
    assert hash_split("same") == hash_split("same")
    assert 0.12 < splits["test"] / 4000 < 0.18 and 0.12 < splits["val"] / 4000 < 0.18


def test_a_text_in_several_splits_is_held_out() -> None:
    kept = deduplicated(
        [
            Example("Hello  World", "chat", "a", "train"),
            Example("hello world", "other", "b", "test"),
            Example("x", "code", "a", "val"),
        ]
    )
    assert [(e.label, e.split) for e in kept] == [("chat", "test"), ("code", "val")]


def test_read_labelled_jsonl_csv_and_errors(tmp_path: Path) -> None:
    jsonl = tmp_path / "l.jsonl"
    jsonl.write_text(
        json.dumps({"text": "a", "label": "x", "split": "test"})
        + "\n"
        + json.dumps({"text": "b", "label": "y"})
        + "\n"
    )
    rows = read_labelled(jsonl)
    assert [(r.text, r.label) for r in rows] == [("a", "x"), ("b", "y")] and rows[0].split == "test"
    csv = tmp_path / "l.csv"
    csv.write_text("text,label\nhard one,0.9\n")
    assert read_labelled(csv, float)[0].label == 0.9
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "a"}) + "\n")
    with pytest.raises(CrossroadsError, match="row 1"):
        read_labelled(bad)
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"text": "a", "label": "x", "split": "holdout"}) + "\n")
    with pytest.raises(CrossroadsError, match="holdout"):
        read_labelled(wrong)
    with pytest.raises(CrossroadsError, match="no labelled data"):
        read_labelled(tmp_path / "missing.jsonl")


def test_written_data_files_parse() -> None:
    labels = {label for label, _ in corpora._tsv_rows(corpora._data_file("domain_curated.tsv"))}
    assert labels == set(corpora.DOMAIN_LABELS)
    alpaca = dict(corpora._tsv_rows(corpora._data_file("alpacaeval_domains.tsv")))
    assert len(alpaca) == 805 and set(alpaca.values()) <= set(corpora.DOMAIN_LABELS)
    attacks = [
        r for r in corpora._tsv_rows(corpora._data_file("jailbreak_curated.tsv")) if r[0] == "1"
    ]
    assert len({style for _, style, _ in attacks}) >= 10  # several attack styles


@needs_shared
def test_domain_corpus_keeps_test_texts_out_of_training() -> None:
    examples = corpora.domain_examples(SHARED)
    assert {e.label for e in examples} == set(corpora.DOMAIN_LABELS)
    texts = Counter(" ".join(e.text.split()).lower() for e in examples)
    assert max(texts.values()) == 1  # deduplicated, so no test text also sits in train
    routed = [e for e in examples if e.source == "routerdc-7model" and e.label == "code"]
    assert {e.split for e in routed} >= {"test"}


@needs_shared
def test_jailbreak_templates_keep_a_wrapper_in_one_split() -> None:
    examples = [e for e in corpora.jailbreak_examples(SHARED) if e.source == "template"]
    by_wrapper: dict[str, set[str]] = {}
    for e in examples:
        by_wrapper.setdefault(e.text[:25], set()).add(e.split)
    assert all(len(s) == 1 for s in by_wrapper.values())
    assert sum(e.label for e in corpora.jailbreak_examples(SHARED)) >= 250


@needs_shared
def test_complexity_labels_are_failure_rates() -> None:
    examples = corpora.complexity_examples(SHARED)
    assert all(0.0 <= e.label <= 1.0 for e in examples)
    assert {e.source for e in examples} == set(corpora.SMALL_MODELS)
