from pathlib import Path

import pytest

from crossroads.local.paths import data_dir, logs_dir, models_dir


def test_env_override_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSROADS_DATA_DIR", "/srv/xr")
    monkeypatch.setenv("XDG_DATA_HOME", "/xdg")
    assert data_dir() == Path("/srv/xr")


def test_default_is_under_local_share(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROSSROADS_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert data_dir() == Path.home() / ".local" / "share" / "crossroads"


def test_models_and_logs_default_to_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CROSSROADS_DATA_DIR", str(tmp_path))
    assert models_dir() == tmp_path / "models" and models_dir().is_dir()
    assert logs_dir() == tmp_path / "logs" and logs_dir().is_dir()


def test_an_explicit_base_wins(tmp_path: Path) -> None:
    assert models_dir(tmp_path / "x") == tmp_path / "x" / "models"
