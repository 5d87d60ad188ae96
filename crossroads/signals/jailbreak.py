"""Jailbreak / prompt-injection signal: a head over the embedding plus a few rules.

The head scores the start of the text (the encoder reads 256 tokens); the rules read all of
it and catch the classic phrasings the head may miss: instruction overrides, requests for
the hidden prompt, chat-template role tags, and either of those hidden in base64. The value
is the larger of the two scores; the detail says which rule fired.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from crossroads.registry import SIGNALS
from crossroads.signals.learned import LearnedSignal, LearnedSignalConfig
from crossroads.types import SignalResult, ValueSpec

if TYPE_CHECKING:
    import numpy as np

RULE_SCORE = 0.9

_TARGETS = (
    r"(instructions?|rules|guidelines|directives|prompts?|restrictions|programming|"
    r"polic(?:y|ies)|guardrails|safety (?:filters?|training|rules))"
)
RULES: dict[str, re.Pattern[str]] = {
    "override": re.compile(
        r"\b(ignore|disregard|forget|skip|override|bypass|drop)\b[^.\n]{0,40}?"
        r"\b(all|any|every|the|your|previous|prior|above|earlier|preceding|original)\b"
        rf"[^.\n]{{0,30}}?\b{_TARGETS}\b",
        re.IGNORECASE,
    ),
    "leak": re.compile(
        r"\b(reveal|print|show|repeat|output|dump|paste|quote|spell out|tell me|what (?:is|are|were) your)\b"
        r"[^.\n]{0,40}?\b(system|initial|hidden|developer|original|secret|pre-?)[ -]?"
        r"(prompt|message|instructions)\b",
        re.IGNORECASE,
    ),
    "role_tags": re.compile(
        r"<\|im_start\|>|<\|im_end\|>|\[/?INST\]|<</?SYS>>|</system>|###\s*system\b",
        re.IGNORECASE,
    ),
    "persona": re.compile(
        r"\b(do anything now|you are (?:now )?(?:DAN|jailbroken|unfiltered|uncensored|unrestricted))\b",
        re.IGNORECASE,
    ),
}
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")


def rule_hit(text: str) -> str | None:
    """The name of the first rule ``text`` trips (``base64:<rule>`` when hidden), or None."""
    for name, pattern in RULES.items():
        if pattern.search(text):
            return name
    for blob in _BASE64.findall(text)[:8]:
        try:
            decoded = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        inner = decoded.decode("utf-8", "ignore")
        for name, pattern in RULES.items():
            if pattern.search(inner):
                return f"base64:{name}"
    return None


class JailbreakSignalConfig(LearnedSignalConfig):
    """Matches when the score reaches ``threshold``; ``rules: false`` uses the head only."""

    kind: Literal["jailbreak"]
    threshold: float = Field(0.5, ge=0, le=1)
    rules: bool = True


@SIGNALS.register("jailbreak")
class JailbreakSignal(LearnedSignal):
    """Attack score in [0, 1] (value); ``head=0.97`` or ``rule=override`` (detail)."""

    kind = "jailbreak"
    head_name = "jailbreak"
    config_class = JailbreakSignalConfig
    value_spec = ValueSpec("number", 0, 1)  # the attack score

    @classmethod
    def value_spec_for(cls, config: JailbreakSignalConfig) -> ValueSpec:
        """It matches exactly when the score reaches ``threshold``."""
        return replace(cls.value_spec, matched_when=((">=", config.threshold),))

    def judge(self, vector: np.ndarray, text: str) -> SignalResult:
        score = float(self.head.scores(vector[None, :])[0])
        detail = f"head={score:.2f}"
        hit = rule_hit(text) if self.config.rules else None
        if hit is not None and score < RULE_SCORE:
            score, detail = RULE_SCORE, f"{detail} rule={hit}"
        return SignalResult(
            self.name, score >= self.config.threshold, round(score, 4), detail=detail
        )
