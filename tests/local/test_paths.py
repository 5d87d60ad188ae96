from pathlib import Path

from crossroads.local.paths import data_dir, logs_dir, models_dir


def test_env_override_wins() -> None:
    env = {"CROSSROADS_DATA_DIR": "/srv/xr", "XDG_DATA_HOME": "/xdg"}
    assert data_dir(env) == Path("/srv/xr")


def test_xdg_data_home_is_used() -> None:
    assert data_dir({"XDG_DATA_HOME": "/xdg"}) == Path("/xdg/crossroads")


def test_default_is_under_local_share() -> None:
    assert data_dir({}) == Path.home() / ".local" / "share" / "crossroads"


def test_subdirectories_are_created(tmp_path: Path) -> None:
    assert models_dir(tmp_path).is_dir()
    assert logs_dir(tmp_path) == tmp_path / "logs"
    assert logs_dir(tmp_path).is_dir()
