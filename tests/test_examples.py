"""Every example config validates, and `crossroads validate` agrees."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossroads.cli import app
from crossroads.config import load_config
from crossroads.conflicts import find_conflicts

EXAMPLES = sorted((Path(__file__).parent.parent / "examples" / "configs").rglob("*.yaml"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_example_is_valid_and_conflict_free(path: Path) -> None:
    cfg = load_config(path)
    assert find_conflicts(cfg) == []


def test_validate_command_accepts_all_examples() -> None:
    result = CliRunner().invoke(app, ["validate", *map(str, EXAMPLES)])
    assert result.exit_code == 0, result.output
    assert result.output.count("✓") == len(EXAMPLES)
