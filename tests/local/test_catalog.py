import importlib.util
from pathlib import Path

import pytest

from crossroads.exceptions import LocalModelError
from crossroads.local import LOCAL_MODELS, locate_model_file, missing_requirements
from crossroads.local.catalog import local_model

from .conftest import require_model


def test_catalogue_has_a_chat_and_a_completion_model() -> None:
    assert {m.style for m in LOCAL_MODELS.values()} == {"chat", "completion"}


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(LocalModelError, match="known: gemma-3-270m, smollm2-135m-instruct"):
        local_model("gpt-5")


@pytest.mark.parametrize("name", sorted(LOCAL_MODELS))
def test_missing_package_error_gives_the_pip_command(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    module = LOCAL_MODELS[name].module
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == module else real_find_spec(n, *a)
    )
    with pytest.raises(LocalModelError) as info:
        locate_model_file(name, tmp_path)
    assert LOCAL_MODELS[name].install in str(info.value)
    assert LOCAL_MODELS[name].install in missing_requirements([name])


@pytest.mark.local_models
def test_smollm2_is_found_inside_its_package() -> None:
    require_model("smollm2-135m-instruct")
    path = locate_model_file("smollm2-135m-instruct")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.read_bytes()[:4] == b"GGUF"


@pytest.mark.local_models
def test_gemma_is_assembled_once_into_the_data_dir(data_dir: Path) -> None:
    require_model("gemma-3-270m")
    path = locate_model_file("gemma-3-270m", data_dir)
    assert path.parent == data_dir / "models"
    with path.open("rb") as f:
        assert f.read(4) == b"GGUF"
    mtime = path.stat().st_mtime_ns
    assert locate_model_file("gemma-3-270m", data_dir) == path
    assert path.stat().st_mtime_ns == mtime  # the stamp spared a second assembly
    assert not list(path.parent.glob("*.partial"))


@pytest.mark.local_models
def test_a_modified_gemma_file_is_reassembled(tmp_path: Path) -> None:
    require_model("gemma-3-270m")
    path = locate_model_file("gemma-3-270m", tmp_path)
    with path.open("r+b") as f:
        f.write(b"JUNK")
    assert locate_model_file("gemma-3-270m", tmp_path).read_bytes()[:4] == b"GGUF"
